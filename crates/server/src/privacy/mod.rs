//! The data lifecycle: how long lead data is kept and what happens when its time is up.

pub mod retention;
