"""The config room: loading layered settings and the generated configuration reference."""
