//! Report rendering: audit issues to Discord embeds within Discord's limits, and to text. (Issue 6 builds this.)
