"""What every family of engines shares: accepting under the limits, datagrams, deadlines,
the lingering close."""
