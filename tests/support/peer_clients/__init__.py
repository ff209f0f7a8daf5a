"""Scripts run with another project's Python (`tests.support.peers`), not ours: each
uses that project's own client against a server and prints what it got as JSON."""
