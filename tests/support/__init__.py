"""Fakes of outside services, shared by every test folder (see each module's docstring)."""
