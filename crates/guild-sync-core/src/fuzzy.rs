//! Fuzzy name scoring with exact parity to Python's `difflib.SequenceMatcher.ratio()`. (Issue 5 builds this.)
