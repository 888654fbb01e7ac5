//! End-to-end tests of the real programs (see `tests/`).
