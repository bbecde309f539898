//! Shared helpers of the integration tests (start_daemon, temp dirs, local receivers).
