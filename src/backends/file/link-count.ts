import { statfsSync } from 'node:fs'

/**
 * Local Linux file systems on which renaming a file over another drops the replaced inode's
 * link count to 0 at once, as seen by fstat(2) on a descriptor that is still open, and on which
 * fstat reads the inode itself rather than cached attributes. Network and layered file systems
 * (NFS, SMB, FUSE, overlayfs, whose lower-layer files a rename in the merged view leaves
 * linked) are deliberately absent: readers there keep using stat(2) on the path.
 */
const TRUSTED_FILE_SYSTEMS = new Set([
  0xef53, // ext2, ext3, ext4
  0x58465342, // xfs
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0xf2f52010, // f2fs
])

/**
 * Whether readers of a store in `directory` may detect a newer commit from the link count of
 * the version they loaded (one fstat on a kept descriptor) instead of stat(2) on the path.
 * See docs/DESIGN.md, "The read check in detail" for why that never misses a completed commit.
 */
export function linkCountRevealsReplacement(directory: string): boolean {
  return process.env.ANYSTORE_READ_CHECK !== 'stat' && onTrustedLocalFileSystem(directory)
}

/**
 * Whether `directory` is on Linux, on one of the local file systems above: every change to it
 * goes through this kernel, so its inode and directory events (inotify) see every process's.
 */
export function onTrustedLocalFileSystem(directory: string): boolean {
  if (process.platform !== 'linux') return false
  try {
    return TRUSTED_FILE_SYSTEMS.has(statfsSync(directory).type)
  } catch {
    return false
  }
}
