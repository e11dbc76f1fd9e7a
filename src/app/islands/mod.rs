//! The islands: the parts of a page that run in the browser. There is one, the main
//! window with its conversation windows, which holds the live connection.

pub mod messenger;
