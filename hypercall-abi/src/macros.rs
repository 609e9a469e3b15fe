//! Crate-internal macros: code enums with checked decoding, and compile-time layout checks.

/// Declares a `#[repr(int)]` enum of ABI code numbers.
///
/// Each variant is tied to the `pub const` holding the raw number (so the number is written down
/// once) and to Xen's spelling of its name. The macro derives the usual traits and generates:
/// `ALL`, `raw()`, `from_raw()`, `name()`, `TryFrom<repr>` plus `TryFrom` from each extra source
/// type listed after `try_from:`, `From<Enum> for repr`, and `Display` (Xen's name).
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $repr:ty [$what:literal] {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:path => $xname:literal,
            )+
        }
        try_from: [$($src:ty),* $(,)?];
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr($repr)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                $variant = $value,
            )+
        }

        impl $name {
            /// Every value of this code, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The raw number as it appears in registers or guest memory.
            #[must_use]
            pub const fn raw(self) -> $repr {
                self as $repr
            }

            /// Decodes a raw number; `None` if it names no value of this code.
            #[must_use]
            #[inline]
            pub const fn from_raw(value: $repr) -> Option<Self> {
                match value {
                    $($value => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// Xen's name for this value (as spelled in the public headers and the reference).
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $xname,)+
                }
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> Self {
                value.raw()
            }
        }

        impl TryFrom<$repr> for $name {
            type Error = $crate::UnknownCode;

            fn try_from(value: $repr) -> Result<Self, $crate::UnknownCode> {
                Self::from_raw(value).ok_or($crate::UnknownCode {
                    what: $what,
                    value: i128::from(value),
                })
            }
        }

        $(
            impl TryFrom<$src> for $name {
                type Error = $crate::UnknownCode;

                fn try_from(value: $src) -> Result<Self, $crate::UnknownCode> {
                    <$repr>::try_from(value)
                        .ok()
                        .and_then(Self::from_raw)
                        .ok_or($crate::UnknownCode {
                            what: $what,
                            value: i128::from(value),
                        })
                }
            }
        )*

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// Asserts at compile time the size, the alignment and the offset of every field of a
/// `#[repr(C)]` ABI struct, and that the listed fields add up to the whole size (so the struct has
/// no implicit padding, and no field was left out of the check).
///
/// It also type-checks each listed field against the type written in the table, so a table entry
/// cannot silently describe a field of a different width.
macro_rules! assert_layout {
    (
        $ty:ty, size = $size:expr, align = $align:expr,
        { $($field:ident : $fty:ty = $off:expr),+ $(,)? }
    ) => {
        const _: () = {
            assert!(
                ::core::mem::size_of::<$ty>() == $size,
                concat!("ABI size mismatch: ", stringify!($ty))
            );
            assert!(
                ::core::mem::align_of::<$ty>() == $align,
                concat!("ABI alignment mismatch: ", stringify!($ty))
            );
            $(
                assert!(
                    ::core::mem::offset_of!($ty, $field) == $off,
                    concat!("ABI offset mismatch: ", stringify!($ty), ".", stringify!($field))
                );
            )+
            assert!(
                0 $(+ ::core::mem::size_of::<$fty>())+ == $size,
                concat!("implicit padding or unlisted field in ", stringify!($ty))
            );

            #[allow(dead_code, reason = "only type-checked, never called")]
            fn field_types(value: &$ty) {
                $(let _: $fty = value.$field;)+
            }
        };
    };
}
