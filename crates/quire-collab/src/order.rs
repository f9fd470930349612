//! Client updates taken only in order.
//!
//! yrs integrates a change that arrives before earlier changes of its author when it does
//! not depend on them, and marks the hole with a *skip*; a later change that fills the hole
//! and runs past it underflows a subtraction in yrs (0.28, `BlockStore::push`), which
//! aborts a debug build and corrupts the document's block list in a release build. Found
//! by fuzzing the collaboration socket. Yjs clients connected to one server never need it:
//! each client's changes reach the server in order, and a client that was offline sends
//! what the server lacks as one run from the server's state vector (sync step 2). So what
//! a client sends is cut, before it is stored or applied, to what continues the room's
//! state: per author, the changes up to the first skip the client itself wrote (Yjs
//! includes its own pending changes after one), and no run that starts past what the room
//! has of that author (an edit sent before the client's sync step 2, which carries it again
//! in order). The delete set is kept as it is.

use std::borrow::Cow;

use yrs::StateVector;
use yrs::block::{
    BLOCK_GC_REF_NUMBER, BLOCK_SKIP_REF_NUMBER, HAS_ORIGIN, HAS_PARENT_SUB, HAS_RIGHT_ORIGIN, ItemContent,
};
use yrs::encoding::read::{Error as ReadError, Read};
use yrs::encoding::write::Write;
use yrs::updates::decoder::{Decoder, DecoderV1};

/// One author's run of changes in an encoded update: its header and the bytes of the
/// changes kept.
struct Run<'a> {
    client: u64,
    clock: u32,
    kept: u32,
    bytes: &'a [u8],
}

/// `bytes` (a v1 update) cut to what continues `known`: borrowed when nothing is cut.
pub(crate) fn in_order<'a>(bytes: &'a [u8], known: &StateVector) -> Result<Cow<'a, [u8]>, ReadError> {
    let mut d = DecoderV1::from(bytes);
    let at = |d: &mut DecoderV1| bytes.len() - d.read_to_end().map_or(0, <[u8]>::len);
    let clients: u32 = d.read_var()?;
    let mut runs = Vec::new();
    let mut cut = false;
    for _ in 0..clients {
        let structs: u32 = d.read_var()?;
        let client = d.read_client()?;
        let clock: u32 = d.read_var()?;
        let start = at(&mut d);
        let mut end = start;
        let mut kept = 0;
        let mut skipped = false;
        for _ in 0..structs {
            let info = d.read_info()?;
            match info {
                BLOCK_SKIP_REF_NUMBER => {
                    let _len: u32 = d.read_var()?;
                    skipped = true;
                }
                BLOCK_GC_REF_NUMBER => {
                    d.read_len()?;
                }
                info => {
                    if info & HAS_ORIGIN != 0 {
                        d.read_left_id()?;
                    }
                    if info & HAS_RIGHT_ORIGIN != 0 {
                        d.read_right_id()?;
                    }
                    if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
                        if d.read_parent_info()? {
                            d.read_string()?;
                        } else {
                            d.read_left_id()?;
                        }
                        if info & HAS_PARENT_SUB != 0 {
                            d.read_string()?;
                        }
                    }
                    ItemContent::decode(&mut d, info)?;
                }
            }
            if !skipped {
                kept += 1;
                end = at(&mut d);
            }
        }
        let ahead = clock > known.get(&client);
        cut |= skipped || ahead;
        if !ahead && kept > 0 {
            runs.push(Run { client: client.get(), clock, kept, bytes: &bytes[start..end] });
        }
    }
    if !cut {
        return Ok(Cow::Borrowed(bytes));
    }
    let delete_set = d.read_to_end()?;
    let mut out = Vec::with_capacity(bytes.len());
    out.write_var(runs.len() as u32);
    for run in &runs {
        out.write_var(run.kept);
        out.write_var(run.client);
        out.write_var(run.clock);
        out.write_all(run.bytes);
    }
    out.write_all(delete_set);
    Ok(Cow::Owned(out))
}

/// The highest clock a client's update may reach: yrs adds to clocks without checking
/// (a delete set's range end, a pending delete set merged when a transaction commits, found
/// by fuzzing as an overflow inside a destructor, an abort). Clients count from zero, one
/// per inserted character: half the range is more than any document holds.
pub(crate) const MAX_CLOCK: u32 = u32::MAX / 2;

/// Whether every clock `update` inserts or deletes at is below [`MAX_CLOCK`].
pub(crate) fn clocks_in_range(update: &yrs::Update) -> bool {
    let within =
        |set: &yrs::IdSet| set.iter().all(|(_, ranges)| ranges.iter().all(|r| r.start <= r.end && r.end <= MAX_CLOCK));
    within(&update.insertions(true)) && within(update.delete_set())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, GetString, Map, ReadTxn, Text, Transact, Update};

    fn text(doc: &Doc) -> String {
        doc.get_or_insert_text("t").get_string(&doc.transact())
    }

    /// Applies `bytes` as the collaboration engine does: cut to what continues the document.
    fn apply_in_order(doc: &Doc, bytes: &[u8]) {
        let known = doc.transact().state_vector();
        let bytes = in_order(bytes, &known).unwrap();
        doc.transact_mut().apply_update(Update::decode_v1(&bytes).unwrap()).unwrap();
    }

    #[test]
    fn updates_that_continue_the_document_pass_untouched() {
        let a = Doc::with_client_id(1);
        let t = a.get_or_insert_text("t");
        t.insert(&mut a.transact_mut(), 0, "hello");
        let sv = a.transact().state_vector();
        t.insert(&mut a.transact_mut(), 5, " world");
        a.get_or_insert_map("m").insert(&mut a.transact_mut(), "k", "v");
        t.remove_range(&mut a.transact_mut(), 0, 1);
        let b = Doc::with_client_id(2);
        b.transact_mut()
            .apply_update(Update::decode_v1(&a.transact().encode_state_as_update_v1(&Default::default())).unwrap())
            .unwrap();
        let diff = a.transact().encode_state_as_update_v1(&sv);
        assert!(matches!(in_order(&diff, &sv).unwrap(), Cow::Borrowed(_)));
        let full = a.transact().encode_state_as_update_v1(&Default::default());
        assert!(matches!(in_order(&full, &StateVector::default()).unwrap(), Cow::Borrowed(_)));
        assert_eq!(text(&b), "ello world");
    }

    #[test]
    fn a_run_past_what_the_room_has_waits_for_its_sync() {
        // The author's first change, then a second one sent before the first arrived.
        let a = Doc::with_client_id(1);
        let m = a.get_or_insert_map("m");
        m.insert(&mut a.transact_mut(), "x", "1");
        let sv = a.transact().state_vector();
        m.insert(&mut a.transact_mut(), "y", "2");
        let late = a.transact().encode_state_as_update_v1(&sv);
        let room = Doc::with_client_id(9);
        let cut = in_order(&late, &room.transact().state_vector()).unwrap();
        assert!(matches!(cut, Cow::Owned(_)));
        apply_in_order(&room, &late);
        assert_eq!(
            room.transact().state_vector().get(&yrs::block::ClientID::new(1)),
            0,
            "nothing out of order is taken"
        );
        // The sync step 2 that follows brings both in order.
        let all = a.transact().encode_state_as_update_v1(&Default::default());
        apply_in_order(&room, &all);
        assert_eq!(room.get_or_insert_map("m").len(&room.transact()), 2);
    }

    #[test]
    fn a_hole_filled_past_its_end_is_not_taken() {
        // The case fuzzing found: a change integrated ahead of a hole (a skip), then a run
        // that starts in the hole and runs past it, which made yrs subtract past zero.
        let first = Doc::with_client_id(1);
        first.get_or_insert_text("t").insert(&mut first.transact_mut(), 0, "hello");
        let u_first = first.transact().encode_state_as_update_v1(&Default::default());
        let a = Doc::with_client_id(1);
        let t = a.get_or_insert_text("t");
        t.insert(&mut a.transact_mut(), 0, "hello");
        t.insert(&mut a.transact_mut(), 5, "abc");
        let sv = a.transact().state_vector();
        t.insert(&mut a.transact_mut(), 0, "world");
        let u_last = a.transact().encode_state_as_update_v1(&sv);
        // Merged, the two carry a skip where "abc" is: an update Yjs writes only for its
        // own pending changes.
        let merged = yrs::merge_updates_v1([u_first.as_slice(), u_last.as_slice()]).unwrap();
        let room = Doc::with_client_id(9);
        apply_in_order(&room, &merged);
        assert_eq!(text(&room), "hello", "what follows the skip is left out");
        // Sent on its own, the change after the hole is ahead of the room: left out too.
        apply_in_order(&room, &u_last);
        assert_eq!(text(&room), "hello");
        // In order, everything arrives.
        let known = room.transact().state_vector();
        let rest = a.transact().encode_state_as_update_v1(&known);
        apply_in_order(&room, &rest);
        assert_eq!(text(&room), text(&a));
    }

    #[test]
    fn clocks_past_half_their_range_are_out_of_range() {
        let a = Doc::with_client_id(1);
        let t = a.get_or_insert_text("t");
        t.insert(&mut a.transact_mut(), 0, "hello");
        t.remove_range(&mut a.transact_mut(), 0, 2);
        let fine = Update::decode_v1(&a.transact().encode_state_as_update_v1(&Default::default())).unwrap();
        assert!(clocks_in_range(&fine));
        // A delete set (v1: one client, id 1, one range) from near the top of the range.
        let mut far = vec![0u8];
        far.write_var(1u32);
        far.write_var(1u64);
        far.write_var(1u32);
        far.write_var(MAX_CLOCK);
        far.write_var(5u32);
        let far = Update::decode_v1(&far).unwrap();
        assert!(!clocks_in_range(&far), "{far:?}");
    }

    #[test]
    fn damaged_updates_are_errors() {
        let a = Doc::with_client_id(1);
        a.get_or_insert_text("t").insert(&mut a.transact_mut(), 0, "hello");
        let full = a.transact().encode_state_as_update_v1(&Default::default());
        assert!(in_order(&full[..full.len() / 2], &StateVector::default()).is_err());
    }
}
