// One line per row: on a TTY it is rewritten in place while the row runs, then left as the row's result;
// elsewhere (CI, pipes) only the result line is printed.

export class ProgressLine {
  readonly #tty = process.stdout.isTTY === true
  #label = ''

  start (label: string): void {
    this.#label = label
    this.#draw('starting')
  }

  update (text: string): void { this.#draw(text) }

  done (text: string): void {
    if (this.#tty) process.stdout.write(`\r\x1b[K${this.#label}  ${text}\n`)
    else console.log(`${this.#label}  ${text}`)
  }

  #draw (text: string): void {
    if (this.#tty) process.stdout.write(`\r\x1b[K${this.#label}  ${text}`.slice(0, (process.stdout.columns || 120) + 4))
  }
}
