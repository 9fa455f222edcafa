//! guild-sync-core: the decisions of guild-sync, free of I/O. Name normalization, note parsing,
//! fuzzy scoring, the match plan, integrity findings, report rendering and the SavedVariables
//! parser live here. This crate must not depend on tokio, sqlx, axum, reqwest or twilight, so
//! everything in it is testable without a database or network.

/// Declares a closed vocabulary stored as text (a status or type column) and sent as the same
/// text in JSON: the enum, deriving `Serialize`/`Deserialize` under those spellings, with `ALL`,
/// `as_str`, `parse` (the stored spelling back; `None` for anything else) and `Display` (the
/// spelling, for logs and pages). The spellings are written once, so the database's text, the
/// JSON and the code cannot drift apart. Used by callers that must name `serde`.
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and JSON) spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The stored spelling back; `None` for any other text.
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod addon;
pub mod candidates;
pub mod claims;
pub mod fuzzy;
pub mod integrity;
pub mod matching;
pub mod names;
pub mod notes;
pub mod report;
pub mod roles;
pub mod roster;
pub mod savedvars;
pub mod secret;
pub mod text;
