"""Staff admin dashboard (issue #7): aggregate selectors, server-side SVG charts and the view."""
