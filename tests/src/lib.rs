//! Harness for black-box tests: starts the real `workspace-server` binary and talks HTTP to it.
