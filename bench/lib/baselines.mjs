import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'

/**
 * What the machine can do without the store, measured in the same run as the store so that
 * each store figure is printed as a ratio to its limit.
 */

const CHUNK = 1024 * 1024
const KEY = randomBytes(32)
const { flockSync } = createRequire(import.meta.url)('fs-ext')

function encrypt(plain) {
  const nonce = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', KEY, nonce)
  const parts = [nonce]
  for (let at = 0; at < plain.length; at += CHUNK) {
    parts.push(cipher.update(plain.subarray(at, at + CHUNK)))
  }
  parts.push(cipher.final(), cipher.getAuthTag())
  return parts
}

function decrypt(bytes) {
  const decipher = createDecipheriv('aes-256-gcm', KEY, bytes.subarray(0, 12))
  decipher.setAuthTag(bytes.subarray(bytes.length - 16))
  const body = bytes.subarray(12, bytes.length - 16)
  const out = Buffer.allocUnsafe(body.length)
  let written = 0
  for (let at = 0; at < body.length; at += CHUNK) {
    written += decipher.update(body.subarray(at, at + CHUNK)).copy(out, written)
  }
  decipher.final()
  return out
}

/**
 * A raw durable replace of `size` bytes: encrypt, write a temp file, fsync it, rename it over
 * the target, fsync the directory (the fsyncs only when `sync`). The same steps a commit
 * takes, minus the store.
 */
export function rawWriter(dir, size, sync) {
  const plain = randomBytes(Math.max(0, size - 28))
  const target = join(dir, 'raw.bin')
  const dirFd = fs.openSync(dir, 'r')
  let n = 0
  return {
    write() {
      const parts = encrypt(plain)
      const temp = join(dir, `raw.${n++}.tmp`)
      const fd = fs.openSync(temp, 'wx', 0o600)
      let position = 0
      for (const part of parts) {
        fs.writeSync(fd, part, 0, part.length, position)
        position += part.length
      }
      if (sync) fs.fsyncSync(fd)
      fs.renameSync(temp, target)
      if (sync) fs.fsyncSync(dirFd)
      fs.closeSync(fd)
    },
    close() {
      fs.closeSync(dirFd)
    },
  }
}

/** A file of `size` encrypted bytes and a function that reads and decrypts it (the cold-open floor). */
export function rawReader(dir, size) {
  const file = join(dir, 'cold.bin')
  const parts = encrypt(randomBytes(Math.max(0, size - 28)))
  fs.writeFileSync(file, Buffer.concat(parts))
  return () => decrypt(fs.readFileSync(file))
}

/**
 * The "lock + JSON + atomic write" store a user might write by hand: its cold open takes the
 * flock, reads and parses the whole JSON file, and releases the lock.
 */
export function jsonStore(dir, entries) {
  const file = join(dir, 'store.json')
  const object = Object.fromEntries(entries)
  const temp = `${file}.tmp`
  fs.writeFileSync(temp, JSON.stringify(object))
  fs.renameSync(temp, file)
  const lockFile = `${file}.lock`
  fs.writeFileSync(lockFile, '')
  return {
    file,
    openAndGet(key) {
      const fd = fs.openSync(lockFile, 'r+')
      try {
        flockSync(fd, 'ex')
        const data = JSON.parse(fs.readFileSync(file, 'utf8'))
        flockSync(fd, 'un')
        return data[key]
      } finally {
        fs.closeSync(fd)
      }
    },
  }
}
