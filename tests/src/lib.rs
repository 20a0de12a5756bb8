//! Helpers shared by husk's end-to-end tests.
