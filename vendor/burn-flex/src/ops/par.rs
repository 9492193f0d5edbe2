//! splitguard: elementwise loops split over rayon's threads.
//!
//! flex ran every elementwise operation (unary, scalar, same-shape binary) on
//! the calling thread, so in a training step the other cores waited through
//! every activation, scaling and gradient sum between two convolutions
//! (`perf`: about a third of the audit decoder's step ran on one thread).
//! These helpers cut a contiguous loop into fixed chunks and run them in
//! parallel once the tensor is large enough to pay for the hand-off (PyTorch's
//! CPU backend splits elementwise loops from 32K elements). Each element is
//! computed by the same expression as before, so results are bit-identical
//! whatever the thread count.

/// Elements below which a loop stays on the calling thread.
#[cfg_attr(not(feature = "rayon"), allow(dead_code))]
pub(crate) const ELEMENTWISE_MIN: usize = 1 << 16;

/// Elements per parallel task.
#[cfg(feature = "rayon")]
const CHUNK: usize = 1 << 14;

/// `f(i, piece)` for every `chunk`-long piece `i` of `data` (the last one may
/// be shorter): images, or channel planes, one per task.
pub(crate) fn chunks<E: Send>(
    data: &mut [E],
    chunk: usize,
    f: impl Fn(usize, &mut [E]) + Sync + Send,
) {
    if chunk == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    if data.len() >= ELEMENTWISE_MIN {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
        return;
    }
    data.chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i, c));
}

/// A new vector of `len` values made piece by piece like [`chunks`]:
/// `f(i, piece)` writes every value of the `chunk`-long piece `i` (the last
/// may be shorter). (The zero-filled vector that `chunks` would write over
/// costs a pass over memory first.)
///
/// # Safety
/// `f` must write every slot of every piece it is given: the vector's
/// length is set to `len` afterwards, so a slot left unwritten would be read
/// as uninitialised memory.
pub(crate) unsafe fn chunks_new<R: Send>(
    len: usize,
    chunk: usize,
    f: impl Fn(usize, &mut [core::mem::MaybeUninit<R>]) + Sync + Send,
) -> alloc::vec::Vec<R> {
    let mut out = alloc::vec::Vec::with_capacity(len);
    if len == 0 {
        return out;
    }
    assert!(chunk > 0, "chunks_new: {len} values in pieces of 0");
    let spare = &mut out.spare_capacity_mut()[..len];
    #[cfg(feature = "rayon")]
    if len >= ELEMENTWISE_MIN {
        use rayon::prelude::*;
        spare
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
        // SAFETY: the pieces cover all `len` values and `f` writes every
        // value of its piece (the caller's contract).
        unsafe { out.set_len(len) };
        return out;
    }
    spare
        .chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| f(i, c));
    // SAFETY: as above.
    unsafe { out.set_len(len) };
    out
}

/// `[g(0), .., g(count - 1)]`, in parallel when the work covers `values`
/// values of at least [`ELEMENTWISE_MIN`] (one channel's reduction per task).
pub(crate) fn indices<R: Send>(
    count: usize,
    values: usize,
    g: impl Fn(usize) -> R + Sync + Send,
) -> alloc::vec::Vec<R> {
    #[cfg(feature = "rayon")]
    if values >= ELEMENTWISE_MIN {
        use rayon::prelude::*;
        return (0..count).into_par_iter().map(g).collect();
    }
    let _ = values;
    (0..count).map(g).collect()
}

/// `f` on consecutive chunks of `dst` (in place).
pub(crate) fn update<E: Send>(dst: &mut [E], f: impl Fn(&mut [E]) + Sync + Send) {
    #[cfg(feature = "rayon")]
    if dst.len() >= ELEMENTWISE_MIN {
        use rayon::prelude::*;
        dst.par_chunks_mut(CHUNK).for_each(f);
        return;
    }
    f(dst)
}

/// `f` on matching chunks of `dst` (in place) and `src` (same length).
pub(crate) fn zip_update<E: Send, S: Sync>(
    dst: &mut [E],
    src: &[S],
    f: impl Fn(&mut [E], &[S]) + Sync + Send,
) {
    debug_assert_eq!(dst.len(), src.len());
    #[cfg(feature = "rayon")]
    if dst.len() >= ELEMENTWISE_MIN {
        use rayon::prelude::*;
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| f(d, s));
        return;
    }
    f(dst, src)
}

/// `src.map(op)` into a new vector.
pub(crate) fn map<E: Copy + Sync, R: Send>(
    src: &[E],
    op: impl Fn(E) -> R + Sync + Send,
) -> alloc::vec::Vec<R> {
    #[cfg(feature = "rayon")]
    if src.len() >= ELEMENTWISE_MIN {
        return filled(src.len(), |start, out| {
            for (o, &x) in out.iter_mut().zip(&src[start..]) {
                o.write(op(x));
            }
        });
    }
    src.iter().map(|&x| op(x)).collect()
}

/// `a.zip(b).map(op)` into a new vector (`a` and `b` of the same length).
pub(crate) fn zip_map<E: Copy + Sync, R: Send>(
    a: &[E],
    b: &[E],
    op: impl Fn(E, E) -> R + Sync + Send,
) -> alloc::vec::Vec<R> {
    // `filled` needs every value written: a shorter `b` would leave some
    // unwritten, so this is checked in release builds too.
    assert_eq!(a.len(), b.len(), "zip_map: operands of different lengths");
    #[cfg(feature = "rayon")]
    if a.len() >= ELEMENTWISE_MIN {
        return filled(a.len(), |start, out| {
            for ((o, &x), &y) in out.iter_mut().zip(&a[start..]).zip(&b[start..]) {
                o.write(op(x, y));
            }
        });
    }
    a.iter().zip(b).map(|(&x, &y)| op(x, y)).collect()
}

/// A vector of `len` values, written chunk by chunk in parallel by
/// `fill(start, chunk)`, which must write every value of its chunk. The
/// chunks are plain loops (vectorised), not rayon's per-value collect.
#[cfg(feature = "rayon")]
fn filled<R: Send>(
    len: usize,
    fill: impl Fn(usize, &mut [core::mem::MaybeUninit<R>]) + Sync + Send,
) -> alloc::vec::Vec<R> {
    use rayon::prelude::*;
    let mut out = alloc::vec::Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| fill(i * CHUNK, chunk));
    // SAFETY: every chunk of the first `len` values was written by `fill`
    // (the loops above write one value per slot of their chunk).
    unsafe { out.set_len(len) };
    out
}
