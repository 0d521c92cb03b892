//! Bytes that arrived from a device (a Web Serial read loop, WebSocket messages) waiting
//! for fota-host to read them.

use core::future::poll_fn;
use core::pin::pin;
use core::task::{Poll, Waker};
use core::time::Duration;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use fota_host::LinkError;
use futures::future::{Either, select};

#[derive(Default)]
struct Queue {
    data: VecDeque<u8>,
    closed: Option<LinkError>,
    waker: Option<Waker>,
}

/// A receive queue shared between the code that fills it (event handlers, a read loop)
/// and the link that reads it. Cheap to clone.
#[derive(Clone, Default)]
pub struct Inbox(Rc<RefCell<Queue>>);

impl Inbox {
    /// An empty, open queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes arrived.
    pub fn push(&self, bytes: &[u8]) {
        let mut q = self.0.borrow_mut();
        q.data.extend(bytes);
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    /// The link went away; bytes already queued are still read first.
    pub fn close(&self, why: LinkError) {
        let mut q = self.0.borrow_mut();
        if q.closed.is_none() {
            q.closed = Some(why);
        }
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    /// Whether the link went away.
    pub fn is_closed(&self) -> bool {
        self.0.borrow().closed.is_some()
    }

    /// Why the link went away, if it did.
    pub fn closed_reason(&self) -> Option<LinkError> {
        self.0.borrow().closed.clone()
    }

    fn take(&self, buf: &mut [u8]) -> Option<Result<usize, LinkError>> {
        let mut q = self.0.borrow_mut();
        if !q.data.is_empty() {
            let n = buf.len().min(q.data.len());
            for (slot, byte) in buf.iter_mut().zip(q.data.drain(..n)) {
                *slot = byte;
            }
            return Some(Ok(n));
        }
        q.closed.clone().map(Err)
    }

    /// Up to `buf.len()` bytes, waiting at most `timeout` for the first; `Ok(0)` if none
    /// came. Cancel-safe: dropping it loses nothing.
    pub async fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        if let Some(r) = self.take(buf) {
            return r;
        }
        let ready = poll_fn(|cx| {
            let mut q = self.0.borrow_mut();
            if !q.data.is_empty() || q.closed.is_some() {
                Poll::Ready(())
            } else {
                q.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        let timer = super::sleep(timeout);
        if let Either::Right(_) = select(pin!(ready), pin!(timer)).await {
            self.0.borrow_mut().waker = None;
        }
        self.take(buf).unwrap_or(Ok(0))
    }
}
