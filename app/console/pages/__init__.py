"""The console pages, one module per part of the navigation."""
