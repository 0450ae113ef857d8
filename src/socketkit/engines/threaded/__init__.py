"""The threaded family: a thread per connection over a blocking socket (iterative, threads)."""
