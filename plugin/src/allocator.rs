//! The component's memory allocator: power-of-two size classes over chunks taken
//! from the system allocator.
//!
//! Why not the default: the host gives every call a fresh instance and throws it
//! away afterwards (the isolation promise), so an instance lives for one call.
//! The default allocator (wasi-libc's dlmalloc) spends its effort where that
//! does not pay: coalescing freed chunks, keeping bins sorted, trimming. The
//! profile of a search of 100 had `dlmalloc` and `dlfree` at a sixth of the
//! plugin's own CPU. Here an allocation of up to [`MAX_CLASS`] bytes is a pop from
//! its class's free list or a bump in the current chunk, and a free is a push.
//!
//! Invariants:
//! - A request's class is its size rounded up to a power of two of at least
//!   [`MIN_CLASS`]; the same layout always maps to the same class, so `dealloc`
//!   finds the class from the layout alone.
//! - Every block starts at a multiple of [`MIN_CLASS`] (chunks and carves are
//!   that aligned), which is why a layout aligned to more than that, or larger
//!   than [`MAX_CLASS`], goes to the system allocator unchanged.
//! - A freed block only ever returns to its own class's list; chunks are never
//!   given back to the system allocator (an instance is dropped whole after its
//!   call), so a peak of small allocations stays reserved for the instance's life.
//! - The allocator's functions are not inlined: every allocation site of the
//!   plugin calls one copy (inlined, the component's code grew by a quarter).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// The smallest class, and the alignment of every block: room for the free
/// list's link, and the alignment the system allocator gives.
pub const MIN_CLASS: usize = 16;
/// The largest class; anything larger goes to the system allocator.
pub const MAX_CLASS: usize = 4096;
/// What is taken from the system allocator at a time for small blocks: small,
/// because a fresh instance's memory grows by what is taken, and a get needs
/// only a few kilobytes.
const CHUNK: usize = 16 * 1024;
const CLASSES: usize = (MAX_CLASS.trailing_zeros() - MIN_CLASS.trailing_zeros() + 1) as usize;

/// A free block: the link to the next free block of its class.
struct Free {
    next: *mut Free,
}

struct State {
    /// The head of each class's free list, smallest class first.
    free: [*mut Free; CLASSES],
    /// The unused rest of the current chunk: `bump..end`.
    bump: usize,
    end: usize,
}

// SAFETY: the pointers in `State` are only touched through `Lock::with`.
unsafe impl Send for State {}

/// The allocator.
pub struct SizeClasses {
    state: Lock,
}

/// The state, behind what its target needs: on single-threaded wasm (no
/// `atomics` feature: `wasm32-wasip2` has no threads) nothing, natively (where
/// the tests run) a mutex. The allocator's functions never re-enter it.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
struct Lock(std::cell::UnsafeCell<State>);

// SAFETY: without the atomics feature a wasm module runs on one thread.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
unsafe impl Sync for Lock {}

#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
impl Lock {
    const fn new(state: State) -> Lock {
        Lock(std::cell::UnsafeCell::new(state))
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // SAFETY: one thread, and `f` never calls back into the allocator, so this
        // is the only reference while it lives.
        f(unsafe { &mut *self.0.get() })
    }
}

#[cfg(not(all(target_family = "wasm", not(target_feature = "atomics"))))]
struct Lock(std::sync::Mutex<State>);

#[cfg(not(all(target_family = "wasm", not(target_feature = "atomics"))))]
impl Lock {
    const fn new(state: State) -> Lock {
        Lock(std::sync::Mutex::new(state))
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // Nothing panics while the lock is held; a poisoned lock's state is intact.
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut state)
    }
}

impl SizeClasses {
    pub const fn new() -> SizeClasses {
        SizeClasses {
            state: Lock::new(State {
                free: [ptr::null_mut(); CLASSES],
                bump: 0,
                end: 0,
            }),
        }
    }
}

impl Default for SizeClasses {
    fn default() -> Self {
        SizeClasses::new()
    }
}

/// The class of `layout` in bytes, or `None` when it is the system allocator's.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.size() > MAX_CLASS || layout.align() > MIN_CLASS {
        return None;
    }
    Some(layout.size().max(MIN_CLASS).next_power_of_two())
}

fn index_of(class: usize) -> usize {
    (class.trailing_zeros() - MIN_CLASS.trailing_zeros()) as usize
}

impl State {
    /// Put the block at `addr` on the list of `class`.
    ///
    /// SAFETY: `addr..addr + class` is unused memory of this allocator, aligned
    /// to MIN_CLASS.
    unsafe fn push(&mut self, addr: usize, class: usize) {
        let block = addr as *mut Free;
        let index = index_of(class);
        // SAFETY: the caller gives a free, aligned block of at least MIN_CLASS bytes.
        unsafe {
            block.write(Free {
                next: self.free[index],
            })
        };
        self.free[index] = block;
    }

    /// Give the rest of the current chunk to the free lists, in the largest
    /// power-of-two pieces that fit, so a chunk's tail is not lost.
    fn scatter_tail(&mut self) {
        while self.end - self.bump >= MIN_CLASS {
            let piece = prev_power_of_two(self.end - self.bump).min(MAX_CLASS);
            // SAFETY: the piece is unused memory of the chunk, MIN_CLASS-aligned.
            unsafe { self.push(self.bump, piece) };
            self.bump += piece;
        }
    }

    /// A block of `class` from its list, or carved from the current chunk (a new
    /// one when it has no room), or null when the system allocator has no memory.
    fn take(&mut self, class: usize) -> *mut u8 {
        let index = index_of(class);
        let head = self.free[index];
        if !head.is_null() {
            // SAFETY: a block on the list holds the link written by `push`.
            self.free[index] = unsafe { (*head).next };
            return head.cast();
        }
        if self.end - self.bump < class {
            self.scatter_tail();
            // SAFETY: CHUNK is non-zero and MIN_CLASS a power of two.
            let layout = unsafe { Layout::from_size_align_unchecked(CHUNK, MIN_CLASS) };
            // SAFETY: a non-zero size.
            let chunk = unsafe { System.alloc(layout) };
            if chunk.is_null() {
                return chunk;
            }
            self.bump = chunk as usize;
            self.end = self.bump + CHUNK;
        }
        let block = self.bump;
        self.bump += class;
        block as *mut u8
    }
}

fn prev_power_of_two(n: usize) -> usize {
    1usize << (usize::BITS - 1 - n.leading_zeros())
}

// SAFETY: every block handed out is `class_of(layout)` bytes aligned to
// MIN_CLASS, at least the layout's alignment (see the module's invariants) and is given out once until freed; other
// layouts are the system allocator's, passed through unchanged.
unsafe impl GlobalAlloc for SizeClasses {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(class) => self.state.with(|state| state.take(class)),
            // SAFETY: the caller's contract, passed on.
            None => unsafe { System.alloc(layout) },
        }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class_of(layout) {
            // SAFETY: `ptr` came from `alloc` with this layout, so from this class.
            Some(class) => self
                .state
                .with(|state| unsafe { state.push(ptr as usize, class) }),
            // SAFETY: the caller's contract, passed on.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises `new_size`, rounded to `layout.align()`, fits.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            (Some(old), Some(new)) if old == new => ptr,
            // SAFETY: the caller's contract, passed on.
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: a valid, non-zero layout (the caller's contract).
                let moved = unsafe { self.alloc(new_layout) };
                if !moved.is_null() {
                    // SAFETY: both blocks are valid for the shorter length and distinct.
                    unsafe {
                        ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                moved
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_are_sizes_rounded_up_to_a_power_of_two() {
        assert_eq!(class_of(layout(1, 1)), Some(16));
        assert_eq!(class_of(layout(17, 8)), Some(32));
        assert_eq!(class_of(layout(8, 16)), Some(16));
        assert_eq!(class_of(layout(8, 32)), None);
        assert_eq!(class_of(layout(4096, 8)), Some(4096));
        assert_eq!(class_of(layout(4097, 8)), None);
    }

    #[test]
    fn blocks_are_aligned_distinct_and_hold_their_bytes() {
        let a = SizeClasses::new();
        let mut live: Vec<(*mut u8, Layout)> = Vec::new();
        // Mixed sizes and alignments (the larger ones the system allocator's),
        // across several chunks, whose tails are scattered.
        for i in 0..4000usize {
            let l = layout(1 + (i * 37) % 3000, 1 << (i % 6));
            let p = unsafe { a.alloc(l) };
            assert!(!p.is_null());
            assert_eq!(p as usize % l.align(), 0, "{l:?}");
            unsafe { ptr::write_bytes(p, (i % 251) as u8, l.size()) };
            live.push((p, l));
        }
        let mut ranges: Vec<(usize, usize)> = live
            .iter()
            .map(|(p, l)| (*p as usize, *p as usize + l.size()))
            .collect();
        ranges.sort();
        for pair in ranges.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "overlapping blocks {pair:?}");
        }
        for (i, (p, l)) in live.iter().enumerate() {
            let bytes = unsafe { std::slice::from_raw_parts(*p, l.size()) };
            assert!(
                bytes.iter().all(|b| *b == (i % 251) as u8),
                "block {i} was overwritten"
            );
            unsafe { a.dealloc(*p, *l) };
        }
    }

    #[test]
    fn a_freed_block_is_reused_by_its_class() {
        let a = SizeClasses::new();
        let l = layout(100, 8);
        let p = unsafe { a.alloc(l) };
        unsafe { a.dealloc(p, l) };
        let q = unsafe { a.alloc(layout(120, 4)) };
        assert_eq!(
            p, q,
            "a block of the same class is taken from the free list"
        );
        unsafe { a.dealloc(q, layout(120, 4)) };
    }

    #[test]
    fn realloc_stays_in_place_within_a_class_and_moves_the_bytes_otherwise() {
        let a = SizeClasses::new();
        let l = layout(40, 8);
        let p = unsafe { a.alloc(l) };
        unsafe { ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10) };
        let same = unsafe { a.realloc(p, l, 64) };
        assert_eq!(same, p);
        let grown = unsafe { a.realloc(same, layout(64, 8), 10_000) };
        assert_ne!(grown, p);
        let bytes = unsafe { std::slice::from_raw_parts(grown, 10) };
        assert_eq!(bytes, b"0123456789");
        let shrunk = unsafe { a.realloc(grown, layout(10_000, 8), 20) };
        let bytes = unsafe { std::slice::from_raw_parts(shrunk, 10) };
        assert_eq!(bytes, b"0123456789");
        unsafe { a.dealloc(shrunk, layout(20, 8)) };
    }

    #[test]
    fn large_requests_go_to_the_system_allocator() {
        let a = SizeClasses::new();
        let l = layout(1 << 20, 8);
        let p = unsafe { a.alloc(l) };
        assert!(!p.is_null());
        unsafe { ptr::write_bytes(p, 7, l.size()) };
        unsafe { a.dealloc(p, l) };
        // The small classes were not touched: no chunk was taken.
        assert_eq!(a.state.with(|state| state.end), 0);
    }
}
