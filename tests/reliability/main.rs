//! The reliability suite (issue 8): kill -9 during heavy writes, a bounded load test with a
//! hot reload in the middle, and schemathesis against the OpenAPI document.
mod crash;
mod load;
mod schemathesis;
