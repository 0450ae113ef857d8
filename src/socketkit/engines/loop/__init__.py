"""The loop family: one thread and a poller (select, poll, epoll; pool adds threads for
@blocking handlers)."""
