// Alias bombs for the config tests (unit and CLI): small files whose aliases expand exponentially.
const yaml = (...lines: string[]): string => `${lines.join('\n')}\n`

/** `a: &a [x,...]`, `b: &b [*a,...]`, ... `width` wide and `levels` deep: width^levels leaves. */
export function laughs (levels: number, width = 10): string {
  const names = 'abcdefghijklmnop'.slice(0, levels)
  const lines = [`a: &a [ ${Array(width).fill('lol').join(', ')} ]`]
  for (let i = 1; i < names.length; i++) lines.push(`${names[i]}: &${names[i]} [ ${Array(width).fill(`*${names[i - 1]}`).join(', ')} ]`)
  return yaml(...lines)
}

/** The same with `<<` merge keys: each level merges the previous map `width` times. */
export function mergeBomb (levels: number, width = 10): string {
  const lines = ['m0: &m0 { k0: 1 }']
  for (let i = 1; i < levels; i++) lines.push(`m${i}: &m${i}`, `  <<: [ ${Array(width).fill(`*m${i - 1}`).join(', ')} ]`, `  k${i}: 1`)
  return yaml(...lines)
}
