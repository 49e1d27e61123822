//! The data lifecycle: how long lead data is kept, what happens when its time is up, and what
//! the people in the leads may ask for (GDPR and CCPA requests, the CCPA flags), and deleting
//! members' accounts.

pub mod accounts;
pub mod ccpa;
pub mod requests;
pub mod retention;
