//! Benchmark helpers shared by the criterion benches and the load suite.
