//! What hud reads of ELF files on both sides, the same way: the GNU build-id note, which names a
//! binary in every mapping of a capture (the recorder stamps it, the analyzer checks binaries
//! against it), and whether a binary's code keeps frame pointers (the recorder copies whole
//! stacks of a target without them; the analyzer says why stacks are shallow).

pub mod frame_pointers;
#[cfg(feature = "tasks")]
pub mod task_id;
#[cfg(feature = "tasks")]
pub mod task_polls;
#[cfg(feature = "unwind")]
pub mod unwind_table;

/// The GNU build-id of an ELF image in memory (`None`: not ELF, or no build-id note).
pub fn build_id_of(bytes: &[u8]) -> Option<Vec<u8>> {
    use object::Object;
    object::File::parse(bytes)
        .ok()?
        .build_id()
        .ok()
        .flatten()
        .map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_that_are_not_elf_have_no_build_id() {
        assert_eq!(super::build_id_of(b"not an ELF file"), None);
        assert_eq!(super::build_id_of(&[]), None);
    }

    #[test]
    fn this_test_binary_has_the_build_id_its_note_holds() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        if let Some(id) = super::build_id_of(&me) {
            assert!(id.len() >= 8, "{id:?}");
        }
    }
}
