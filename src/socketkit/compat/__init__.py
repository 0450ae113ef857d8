"""Drop-in replacements for standard library modules: ``from socketkit.compat import
socketserver`` in place of ``import socketserver``, and a program runs unchanged, with
the differences each module documents."""
