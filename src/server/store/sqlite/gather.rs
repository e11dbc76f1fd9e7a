//! A SQLite VFS for the message writer's connection that gathers a commit's WAL writes into
//! one system call.
//!
//! SQLite writes each WAL frame as two `pwrite`s (its 24-byte header, then the page), so a
//! group commit touching fourteen pages made 28 `pwrite`s before its `fsync`: 5.8 per message
//! in the rooms pattern, each a system call with its own trip through the file system
//! (docs/BENCHMARKS.md, "Performance, round two"). No setting of SQLite joins them, so this
//! layer does: writes to a WAL file that continue the previous one are kept in memory and
//! written as one, before anything that could need them on disk or in the file.
//!
//! When the gathered bytes go to the file (the ordering every guarantee rests on):
//! - before the WAL is synced, read, truncated, sized, closed or asked anything else;
//! - before a write that does not continue them (SQLite rewriting a frame, or the WAL
//!   starting over at its beginning), so writes reach the file in the order SQLite made them;
//! - before any lock or barrier on the shared-memory index of the database the WAL belongs
//!   to: SQLite publishes new frames to other connections through that index, and ends every
//!   write transaction (committed or rolled back) by unlocking it there. So no other
//!   connection, of this process or another, can see a frame or write the WAL while frames of
//!   this connection are still only in memory.
//!
//! Everything else passes straight to the VFS beneath (the platform's default). Only the
//! writer's connection opens through this VFS; every other connection uses the default one,
//! and the files are the same files either way.

#![allow(unsafe_code)]

use rusqlite::ffi;
#[cfg(test)]
use std::cell::Cell;
use std::{
    ffi::{c_char, c_int, c_void},
    ptr,
    sync::OnceLock,
};

/// The name the VFS is registered under.
pub const NAME: &str = "messenger-gather";

/// Gathered bytes go out before they would pass this size. SQLite's unix VFS writes at
/// most 128 KiB - 1 bytes per call (it masks the length with 0x1ffff: a longer write comes
/// out short, and one of exactly 128 KiB writes nothing and reports a full disk), so each
/// write beneath stays under that: 29 frames of a 4 KiB page.
const MOST: usize = 120 * 1024;

#[cfg(test)]
thread_local! {
    /// Writes this VFS passed to the files beneath on this thread (a connection is used on
    /// one thread at a time): what the tests count.
    static WRITES_BENEATH: Cell<u64> = const { Cell::new(0) };
}

fn count_write() {
    #[cfg(test)]
    WRITES_BENEATH.with(|n| n.set(n.get() + 1));
}

/// One open file: SQLite's handle, the file of the VFS beneath (in the bytes that follow
/// this struct), and what this layer keeps.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// A WAL file: the bytes written but not yet passed on, and the file offset of the first.
    gathered: Option<Gathered>,
    /// A main database file: its WAL while it is open (null otherwise).
    wal: *mut File,
    /// A WAL file: its main database file.
    db: *mut File,
}

struct Gathered {
    at: i64,
    bytes: Vec<u8>,
}

/// Room for our part, aligned so the file beneath starts on an 8-byte boundary.
const OURS: usize = std::mem::size_of::<File>().next_multiple_of(8);

struct Vfs {
    ours: ffi::sqlite3_vfs,
    beneath: *mut ffi::sqlite3_vfs,
}
/// Registered once; the `Vfs` is leaked (SQLite keeps pointers to it for the process's life).
static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the VFS (once per process; never the default). A connection uses it when
/// opened with [`NAME`] as its VFS.
pub fn register() -> Result<(), String> {
    REGISTERED
        .get_or_init(|| unsafe {
            let beneath = ffi::sqlite3_vfs_find(ptr::null());
            if beneath.is_null() {
                return Err("SQLite has no default VFS".into());
            }
            let name = Box::leak(format!("{NAME}\0").into_boxed_str());
            let mut ours = ptr::read(beneath);
            ours.szOsFile = (OURS + (*beneath).szOsFile as usize) as c_int;
            ours.pNext = ptr::null_mut();
            ours.zName = name.as_ptr() as *const c_char;
            ours.xOpen = Some(open);
            let vfs = Box::leak(Box::new(Vfs { ours, beneath }));
            vfs.ours.pAppData = vfs as *mut Vfs as *mut c_void;
            match ffi::sqlite3_vfs_register(&mut vfs.ours, 0) {
                ffi::SQLITE_OK => Ok(()),
                rc => Err(format!(
                    "registering the WAL-gathering VFS: SQLite error {rc}"
                )),
            }
        })
        .clone()
}

/// The name of the VFS a connection's main database was opened through.
#[cfg(test)]
pub fn vfs_of(conn: &rusqlite::Connection) -> Option<String> {
    let mut vfs: *mut ffi::sqlite3_vfs = ptr::null_mut();
    // SAFETY: SQLITE_FCNTL_VFS_POINTER writes the connection's VFS pointer into `vfs`; the
    // VFS lives as long as the process.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_VFS_POINTER,
            &mut vfs as *mut *mut ffi::sqlite3_vfs as *mut c_void,
        );
        (rc == ffi::SQLITE_OK && !vfs.is_null()).then(|| {
            std::ffi::CStr::from_ptr((*vfs).zName)
                .to_string_lossy()
                .into_owned()
        })
    }
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let vfs = &*((*vfs).pAppData as *const Vfs);
    let f = file as *mut File;
    let inner = (file as *mut u8).add(OURS) as *mut ffi::sqlite3_file;
    (*inner).pMethods = ptr::null();
    let open_beneath = (*vfs.beneath).xOpen.expect("every VFS opens files");
    let rc = open_beneath(vfs.beneath, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK || (*inner).pMethods.is_null() {
        // SQLite calls no method of a file whose open failed and left pMethods null.
        if !(*inner).pMethods.is_null() {
            if let Some(close) = (*(*inner).pMethods).xClose {
                close(inner);
            }
        }
        (*file).pMethods = ptr::null();
        return if rc == ffi::SQLITE_OK {
            ffi::SQLITE_CANTOPEN
        } else {
            rc
        };
    }
    let is_wal = flags & ffi::SQLITE_OPEN_WAL != 0;
    let db = if is_wal && !name.is_null() {
        // The main database's handle, which this VFS opened too (same connection).
        ffi::sqlite3_database_file_object(name) as *mut File
    } else {
        ptr::null_mut()
    };
    ptr::write(
        f,
        File {
            base: ffi::sqlite3_file {
                pMethods: methods(),
            },
            inner,
            gathered: is_wal.then(|| Gathered {
                at: 0,
                bytes: Vec::new(),
            }),
            wal: ptr::null_mut(),
            db,
        },
    );
    if !db.is_null() {
        (*db).wal = f;
    }
    ffi::SQLITE_OK
}

/// Passes what `f` has gathered to its file. An error is SQLite's to see (as if the write
/// itself had failed); the bytes are dropped then, as a failed write leaves nothing to redo.
unsafe fn pass_on(f: *mut File) -> c_int {
    let Some(gathered) = (*f).gathered.as_mut() else {
        return ffi::SQLITE_OK;
    };
    if gathered.bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    let inner = (*f).inner;
    let write = (*(*inner).pMethods).xWrite.expect("every file writes");
    count_write();
    let rc = write(
        inner,
        gathered.bytes.as_ptr() as *const c_void,
        gathered.bytes.len() as c_int,
        gathered.at,
    );
    gathered.bytes.clear();
    rc
}

/// Passes on what the WAL of the main database `f` has gathered (see the module's text).
unsafe fn pass_on_wal_of(f: *mut File) -> c_int {
    if (*f).wal.is_null() {
        ffi::SQLITE_OK
    } else {
        pass_on((*f).wal)
    }
}

unsafe fn inner_methods(f: *mut File) -> &'static ffi::sqlite3_io_methods {
    &*(*(*f).inner).pMethods
}

macro_rules! first_pass_on {
    ($f:expr) => {{
        let rc = pass_on($f);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }};
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let f = file as *mut File;
    let passed = pass_on(f);
    if !(*f).db.is_null() && (*(*f).db).wal == f {
        (*(*f).db).wal = ptr::null_mut();
    }
    if !(*f).wal.is_null() {
        (*(*f).wal).db = ptr::null_mut();
    }
    let rc = inner_methods(f)
        .xClose
        .map_or(ffi::SQLITE_OK, |c| c((*f).inner));
    ptr::drop_in_place(&mut (*f).gathered);
    if passed != ffi::SQLITE_OK {
        passed
    } else {
        rc
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let f = file as *mut File;
    first_pass_on!(f);
    (inner_methods(f).xRead.expect("read"))((*f).inner, buf, amount, offset)
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let f = file as *mut File;
    let size = amount.max(0) as usize;
    if let Some(gathered) = (*f).gathered.as_mut() {
        let continues = gathered.at + gathered.bytes.len() as i64 == offset;
        if !(continues && gathered.bytes.len() + size <= MOST) {
            first_pass_on!(f);
        }
        let gathered = (*f).gathered.as_mut().expect("a WAL file");
        if size <= MOST {
            if gathered.bytes.is_empty() {
                gathered.at = offset;
                // Once, for the file's life: a commit's frames never make it grow.
                gathered.bytes.reserve_exact(MOST);
            }
            gathered
                .bytes
                .extend_from_slice(std::slice::from_raw_parts(buf as *const u8, size));
            return ffi::SQLITE_OK;
        }
    }
    count_write();
    (inner_methods(f).xWrite.expect("write"))((*f).inner, buf, amount, offset)
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    let f = file as *mut File;
    first_pass_on!(f);
    (inner_methods(f).xTruncate.expect("truncate"))((*f).inner, size)
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let f = file as *mut File;
    first_pass_on!(f);
    (inner_methods(f).xSync.expect("sync"))((*f).inner, flags)
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    let f = file as *mut File;
    first_pass_on!(f);
    (inner_methods(f).xFileSize.expect("size"))((*f).inner, size)
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let f = file as *mut File;
    (inner_methods(f).xLock.expect("lock"))((*f).inner, level)
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let f = file as *mut File;
    (inner_methods(f).xUnlock.expect("unlock"))((*f).inner, level)
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let f = file as *mut File;
    (inner_methods(f).xCheckReservedLock.expect("check"))((*f).inner, out)
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    let f = file as *mut File;
    first_pass_on!(f);
    (inner_methods(f).xFileControl.expect("control"))((*f).inner, op, arg)
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let f = file as *mut File;
    (inner_methods(f).xSectorSize.expect("sector"))((*f).inner)
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let f = file as *mut File;
    (inner_methods(f).xDeviceCharacteristics.expect("device"))((*f).inner)
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    page_size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let f = file as *mut File;
    match inner_methods(f).xShmMap {
        Some(map) => map((*f).inner, page, page_size, extend, out),
        None => ffi::SQLITE_IOERR_SHMMAP,
    }
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let f = file as *mut File;
    let rc = pass_on_wal_of(f);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    match inner_methods(f).xShmLock {
        Some(lock) => lock((*f).inner, offset, n, flags),
        None => ffi::SQLITE_IOERR_SHMLOCK,
    }
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    let f = file as *mut File;
    // A barrier cannot fail; a write that failed here fails again at the sync or the unlock
    // that follows every publication, and SQLite sees it there.
    let _ = pass_on_wal_of(f);
    if let Some(barrier) = inner_methods(f).xShmBarrier {
        barrier((*f).inner);
    }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let f = file as *mut File;
    let _ = pass_on_wal_of(f);
    match inner_methods(f).xShmUnmap {
        Some(unmap) => unmap((*f).inner, delete),
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let f = file as *mut File;
    first_pass_on!(f);
    match inner_methods(f).xFetch {
        Some(fetch) => fetch((*f).inner, offset, amount, out),
        None => {
            *out = ptr::null_mut();
            ffi::SQLITE_OK
        }
    }
}

unsafe extern "C" fn unfetch(file: *mut ffi::sqlite3_file, offset: i64, p: *mut c_void) -> c_int {
    let f = file as *mut File;
    match inner_methods(f).xUnfetch {
        Some(unfetch) => unfetch((*f).inner, offset, p),
        None => ffi::SQLITE_OK,
    }
}

/// One table for every file; the file's own part says whether it gathers.
fn methods() -> *const ffi::sqlite3_io_methods {
    static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
        iVersion: 3,
        xClose: Some(close),
        xRead: Some(read),
        xWrite: Some(write),
        xTruncate: Some(truncate),
        xSync: Some(sync),
        xFileSize: Some(file_size),
        xLock: Some(lock),
        xUnlock: Some(unlock),
        xCheckReservedLock: Some(check_reserved_lock),
        xFileControl: Some(file_control),
        xSectorSize: Some(sector_size),
        xDeviceCharacteristics: Some(device_characteristics),
        xShmMap: Some(shm_map),
        xShmLock: Some(shm_lock),
        xShmBarrier: Some(shm_barrier),
        xShmUnmap: Some(shm_unmap),
        xFetch: Some(fetch),
        xUnfetch: Some(unfetch),
    };
    &METHODS
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};
    use std::path::Path;

    fn writes_beneath() -> u64 {
        WRITES_BENEATH.with(Cell::get)
    }

    fn gathering(path: &Path) -> Connection {
        register().expect("registered");
        let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), NAME)
            .expect("opened through the VFS");
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .expect("WAL");
        conn
    }

    fn plain(path: &Path) -> Connection {
        let conn = Connection::open(path).expect("opened");
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }

    const FRAME: u64 = 4096 + 24;

    fn wal_len(path: &Path) -> u64 {
        std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len())
    }

    /// Commits `rows` rows of 3,000 bytes (each most of a page of its own) in one
    /// transaction through the VFS; returns the bytes the commit added to the WAL, the
    /// writes it made beneath, and a fresh connection's count of whole rows.
    fn commit_rows(rows: i64) -> (u64, u64, i64) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.db");
        let mut conn = gathering(&path);
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
            .expect("table");
        let before_len = wal_len(&path);
        let before = writes_beneath();
        let tx = conn.transaction().expect("begin");
        for k in 0..rows {
            tx.execute("INSERT INTO t VALUES (?, randomblob(3000))", [k * 1000])
                .expect("insert");
        }
        // With the first build's limit (1 MiB), a large commit failed here as a full disk.
        tx.commit().expect("commit");
        let written = (wal_len(&path) - before_len, writes_beneath() - before);
        let reader = plain(&path);
        let check: String = reader
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(check, "ok");
        let whole: i64 = reader
            .query_row("SELECT COUNT(*) FROM t WHERE length(v) = 3000", [], |r| {
                r.get(0)
            })
            .expect("count");
        (written.0, written.1, whole)
    }

    /// A commit that writes many pages reaches the WAL in one write (SQLite alone makes two
    /// per page), and its frames are in the file: a fresh connection reads them.
    #[test]
    fn a_commits_frames_reach_the_wal_in_one_write() {
        let (bytes, writes, whole) = commit_rows(20);
        let frames = bytes / FRAME;
        assert!(frames >= 20, "the commit wrote {frames} frames");
        assert_eq!(writes, 1, "one write for {frames} frames");
        assert_eq!(whole, 20);
    }

    /// A commit larger than one write beneath may be (SQLite's unix VFS writes under
    /// 128 KiB per call) goes out in as few writes as fit, and every frame arrives whole.
    #[test]
    fn a_large_commit_goes_out_in_writes_under_the_limit_beneath() {
        let (bytes, writes, whole) = commit_rows(200);
        assert!(bytes / FRAME >= 200, "{} frames", bytes / FRAME);
        let fewest = bytes.div_ceil(MOST as u64);
        assert!(
            (fewest..=fewest + 1).contains(&writes),
            "{writes} writes for {bytes} bytes"
        );
        assert_eq!(whole, 200);
    }

    /// Another connection (as sqlx's are) sees every commit at once, writes the same WAL in
    /// between, and nothing is lost or damaged: neither by a transaction that spilled pages
    /// into the WAL and then rolled back, nor by checkpoints and the WAL starting over.
    #[test]
    fn other_connections_see_every_commit_and_write_between_them() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.db");
        let mut ours = gathering(&path);
        ours.execute_batch(
            "CREATE TABLE t (k INTEGER PRIMARY KEY, who TEXT, v BLOB);
             PRAGMA cache_size = 10; PRAGMA wal_autocheckpoint = 50;",
        )
        .expect("table");
        let other = plain(&path);
        let count = |who: &str| -> i64 {
            other
                .query_row("SELECT COUNT(*) FROM t WHERE who = ?", [who], |r| r.get(0))
                .expect("count")
        };
        let mut key = 0;
        for round in 1..=60 {
            let tx = ours.transaction().expect("begin");
            for _ in 0..3 {
                key += 1;
                tx.execute("INSERT INTO t VALUES (?, 'ours', zeroblob(2000))", [key])
                    .expect("insert");
            }
            tx.commit().expect("commit");
            assert_eq!(
                count("ours"),
                round * 3,
                "seen at once after commit {round}"
            );
            if round % 10 == 0 {
                // More pages than the cache holds: SQLite spills them into the WAL before
                // the end of the transaction, which then rolls back.
                let tx = ours.transaction().expect("begin");
                for k in 0..40 {
                    tx.execute(
                        "INSERT INTO t VALUES (?, 'undone', zeroblob(3000))",
                        [1_000_000 + k],
                    )
                    .expect("insert");
                }
                drop(tx);
            }
            key += 1;
            other
                .execute("INSERT INTO t VALUES (?, 'other', zeroblob(2000))", [key])
                .expect("the other connection writes");
        }
        assert_eq!(count("undone"), 0);
        assert_eq!(count("other"), 60);
        drop(ours);
        let check: String = other
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(check, "ok");
        drop(other);
        let reopened = plain(&path);
        let n: i64 = reopened
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 240);
    }
}
