//! The match plan: from a snapshot of unlinked characters, Discord users and players to the links, players and suggestions to create. (Issue 5 builds this.)
