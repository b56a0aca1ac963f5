import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'

/** Ctrl-C at a prompt: exit status 130, as for Ctrl-C elsewhere. */
export class InterruptedError extends Error {
  readonly code = 'INTERRUPTED'
}

/**
 * Asks `question` on the terminal and reads one line without echoing it: for passphrases,
 * which must not appear on the screen or in a terminal's scrollback. readline does the line
 * editing (backspace, Ctrl-U) and puts the terminal in raw mode; its output goes to a stream
 * that drops everything, so nothing typed is shown. The question goes to stderr, so stdout
 * stays the command's output. Ctrl-C rejects with InterruptedError, end of input with an Error.
 */
export async function promptHidden(
  question: string,
  input: NodeJS.ReadStream = process.stdin,
  output: NodeJS.WritableStream = process.stderr,
): Promise<string> {
  const muted = new Writable({
    write(_chunk, _encoding, callback) {
      callback()
    },
  })
  output.write(question)
  const rl = createInterface({ input, output: muted, terminal: true })
  try {
    return await new Promise<string>((resolve, reject) => {
      rl.once('line', resolve)
      // In raw mode Ctrl-C is a key, not a signal: readline reports it as 'SIGINT'.
      rl.once('SIGINT', () => reject(new InterruptedError('Interrupted at the passphrase prompt')))
      rl.once('close', () => reject(new Error('No passphrase: the input ended at the prompt')))
    })
  } finally {
    rl.close()
    // The Enter the user typed was not echoed either.
    output.write('\n')
  }
}
