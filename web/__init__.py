"""The web app: server-rendered pages (Jinja2) on the API's own sign-in, roles and read
models; every asset served from here."""
