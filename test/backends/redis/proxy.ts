import { connect, createServer, type Socket } from 'node:net'

/**
 * A TCP proxy in front of a redis-server that can lose one reply on purpose: once armed with a
 * marker, the first request that contains it reaches the server and runs there, but its reply
 * is withheld and the client's connection cut. The client cannot know whether the command ran:
 * exactly the unknown outcome a commit must survive without being applied twice.
 */
export interface ReplyDroppingProxy {
  readonly port: number
  /** How many replies were dropped so far. */
  readonly dropped: number
  /** Drops the reply to the next request whose bytes contain `marker`. */
  dropReplyTo(marker: string): void
  close(): Promise<void>
}

export async function startProxy(targetPort: number): Promise<ReplyDroppingProxy> {
  let marker: Buffer | undefined
  let dropped = 0
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1')
    sockets.add(client).add(upstream)
    let dropNext = false
    // The end of the previous chunk, so that a marker split across two chunks is still seen.
    let tail: Buffer = Buffer.alloc(0)
    const cut = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('data', (chunk: Buffer) => {
      if (marker !== undefined && Buffer.concat([tail, chunk]).includes(marker)) {
        marker = undefined
        dropNext = true
      }
      tail = chunk.subarray(Math.max(0, chunk.length - 64))
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      if (dropNext) {
        // The request was sent alone and answered: this chunk is its reply, applied and lost.
        dropped++
        cut()
        return
      }
      client.write(chunk)
    })
    client.on('error', cut)
    upstream.on('error', cut)
    client.on('close', () => {
      upstream.destroy()
      sockets.delete(client)
    })
    upstream.on('close', () => {
      client.destroy()
      sockets.delete(upstream)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (typeof address !== 'object' || address === null) throw new Error('no port')
  return {
    port: address.port,
    get dropped() {
      return dropped
    },
    dropReplyTo(text: string) {
      marker = Buffer.from(text)
    },
    close() {
      for (const socket of sockets) socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
