"""The operator console at ``/console/``: server-rendered pages over the same services as the
API and the CLI. No script, no CDN: a stylesheet and the pages, all served by the app."""
