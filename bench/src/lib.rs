//! Home of LeadGen's criterion benchmarks (`cargo bench -p leadgen-bench`); see docs/performance.md.
