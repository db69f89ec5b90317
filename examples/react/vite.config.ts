import { defineConfig } from "vite";

// No React plugin needed: Vite compiles JSX/TSX itself with the automatic runtime.
// `npm run dev` proxies /api to the gateway (ENECA_URL, default http://127.0.0.1:8000),
// so the browser sees one origin and the server needs no CORS_ORIGINS for development.
const target = process.env.ENECA_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  server: { proxy: { "/api": { target, changeOrigin: true } } },
});
