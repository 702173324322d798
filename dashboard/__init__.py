"""Staff admin dashboard: aggregate selectors, server-side SVG charts and the view (the top of the import graph)."""
