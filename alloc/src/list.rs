//! Intrusive doubly linked lists over metadata records (slabs, segments,
//! large headers). The links live in the records; a `Links` type says which
//! pair of link fields a list uses, so one record can be on two lists with
//! different link pairs. No allocation, O(1) push/remove.

use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr;

/// Selects a pair of link fields of `T`.
pub(crate) trait Links<T> {
    fn next(t: &T) -> &Cell<*mut T>;
    fn prev(t: &T) -> &Cell<*mut T>;
}

pub(crate) struct List<T, L: Links<T>> {
    pub(crate) head: *mut T,
    pub(crate) tail: *mut T,
    pub(crate) len: usize,
    _links: PhantomData<L>,
}

// SAFETY: a list is only a set of pointers; the records it points to are
// protected by whoever protects the list (a lock or a single owner).
unsafe impl<T, L: Links<T>> Send for List<T, L> {}

impl<T, L: Links<T>> List<T, L> {
    pub(crate) const fn new() -> Self {
        List {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            len: 0,
            _links: PhantomData,
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// # Safety
    /// `t` points to a live record that is on no list using these links.
    pub(crate) unsafe fn push_front(&mut self, t: *mut T) {
        // SAFETY: per the contract `t` is live; `head` is live if non-null.
        unsafe {
            L::prev(&*t).set(ptr::null_mut());
            L::next(&*t).set(self.head);
            if self.head.is_null() {
                self.tail = t;
            } else {
                L::prev(&*self.head).set(t);
            }
        }
        self.head = t;
        self.len += 1;
    }

    /// # Safety
    /// As for [`push_front`](Self::push_front).
    pub(crate) unsafe fn push_back(&mut self, t: *mut T) {
        // SAFETY: per the contract `t` is live; `tail` is live if non-null.
        unsafe {
            L::next(&*t).set(ptr::null_mut());
            L::prev(&*t).set(self.tail);
            if self.tail.is_null() {
                self.head = t;
            } else {
                L::next(&*self.tail).set(t);
            }
        }
        self.tail = t;
        self.len += 1;
    }

    /// # Safety
    /// `t` is on this list.
    pub(crate) unsafe fn remove(&mut self, t: *mut T) {
        // SAFETY: per the contract `t` and its neighbours are live records
        // of this list.
        unsafe {
            let next = L::next(&*t).get();
            let prev = L::prev(&*t).get();
            if prev.is_null() {
                self.head = next;
            } else {
                L::next(&*prev).set(next);
            }
            if next.is_null() {
                self.tail = prev;
            } else {
                L::prev(&*next).set(prev);
            }
            L::next(&*t).set(ptr::null_mut());
            L::prev(&*t).set(ptr::null_mut());
        }
        self.len -= 1;
    }

    /// # Safety
    /// Every record on the list is live.
    pub(crate) unsafe fn pop_front(&mut self) -> *mut T {
        let h = self.head;
        if !h.is_null() {
            // SAFETY: `h` is on this list.
            unsafe { self.remove(h) };
        }
        h
    }

    /// # Safety
    /// Every record on the list is live.
    pub(crate) unsafe fn pop_back(&mut self) -> *mut T {
        let t = self.tail;
        if !t.is_null() {
            // SAFETY: `t` is on this list.
            unsafe { self.remove(t) };
        }
        t
    }

    /// The record after `t` (null at the end).
    ///
    /// # Safety
    /// `t` is a live record on this list.
    #[inline]
    pub(crate) unsafe fn next_of(&self, t: *mut T) -> *mut T {
        // SAFETY: per the contract.
        unsafe { L::next(&*t).get() }
    }

    /// Iterates over the records; at most `len + 1` steps, so a corrupted
    /// (cyclic) list cannot hang a walker that counts.
    ///
    /// # Safety
    /// Every record on the list stays live and the list is not modified
    /// during the iteration.
    pub(crate) unsafe fn iter(&self) -> Iter<'_, T, L> {
        Iter {
            cur: self.head,
            left: self.len + 1,
            _list: self,
        }
    }
}

pub(crate) struct Iter<'a, T, L: Links<T>> {
    cur: *mut T,
    left: usize,
    _list: &'a List<T, L>,
}

impl<T, L: Links<T>> Iterator for Iter<'_, T, L> {
    type Item = *mut T;
    fn next(&mut self) -> Option<*mut T> {
        if self.cur.is_null() || self.left == 0 {
            return None;
        }
        self.left -= 1;
        let c = self.cur;
        // SAFETY: the iterator's contract keeps every record live.
        self.cur = unsafe { L::next(&*c).get() };
        Some(c)
    }
}
