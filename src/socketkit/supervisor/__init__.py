"""prefork: a master that supervises worker processes, each running one engine."""
