//! Integrity findings: issue types, severities and issue hashes. (Issue 6 builds this.)
