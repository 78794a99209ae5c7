"""The gateway's browser pages: shared set-up (Jinja2, static files, security headers and CSRF in
security.py), staff sign-in sessions (sessions.py, signin.py), and the pages themselves, each
registering its own routes."""

from __future__ import annotations

from aiohttp import web

from . import agent, contact, pages, rules, security, signin


def setup(app: web.Application) -> None:
    security.setup(app)
    pages.setup(app)
    signin.setup(app)
    contact.setup(app)
    agent.setup(app)
    rules.setup(app)
