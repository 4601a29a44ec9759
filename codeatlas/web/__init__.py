"""The browser app: the HTML shell, its static ES modules and stylesheet, the cookie-based
session endpoints the app signs in with, and the small JSON helpers only the app needs
(highlighted file view, admin users list)."""
