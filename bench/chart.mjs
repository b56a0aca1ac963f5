/**
 * Draws commit cost and read cost against store size, both axes logarithmic, as a standalone
 * SVG (no dependencies). Each series is a list of [size, microseconds].
 */
export function renderChart({ title, subtitle, series }) {
  const width = 760
  const height = 440
  const margin = { left: 80, right: 230, top: 60, bottom: 60 }
  const plotW = width - margin.left - margin.right
  const plotH = height - margin.top - margin.bottom
  const points = series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && y > 0)
  const xs = points.map(([x]) => x)
  const ys = points.map(([, y]) => y)
  const xMin = 10 ** Math.floor(Math.log10(Math.min(...xs)))
  const xMax = 10 ** Math.ceil(Math.log10(Math.max(...xs)))
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...ys)))
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...ys)))
  const sx = (x) =>
    margin.left +
    ((Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin) || 1)) * plotW
  const sy = (y) =>
    margin.top +
    plotH -
    ((Math.log10(y) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin) || 1)) * plotH
  const out = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${margin.left}" y="24" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="${margin.left}" y="42" fill="#555">${escapeXml(subtitle)}</text>`,
  )
  const sizeLabel = (x) => (x >= 1000 ? `${x / 1000}k` : String(x))
  for (let x = xMin; x <= xMax; x *= 10) {
    out.push(
      `<line x1="${sx(x)}" y1="${margin.top}" x2="${sx(x)}" y2="${margin.top + plotH}" stroke="#ddd"/>`,
      `<text x="${sx(x)}" y="${margin.top + plotH + 18}" text-anchor="middle">${sizeLabel(x)}</text>`,
    )
  }
  const timeLabel = (y) => (y >= 1000 ? `${y / 1000} ms` : `${y} µs`)
  for (let y = yMin; y <= yMax; y *= 10) {
    out.push(
      `<line x1="${margin.left}" y1="${sy(y)}" x2="${margin.left + plotW}" y2="${sy(y)}" stroke="#ddd"/>`,
      `<text x="${margin.left - 8}" y="${sy(y) + 4}" text-anchor="end">${timeLabel(y)}</text>`,
    )
  }
  out.push(
    `<text x="${margin.left + plotW / 2}" y="${height - 16}" text-anchor="middle">entries in the store (100-byte values), log scale</text>`,
    `<text transform="translate(18 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">median time per operation, log scale</text>`,
  )
  series.forEach((s, i) => {
    const valid = s.points.filter(([x, y]) => x > 0 && y > 0)
    const path = valid
      .map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)
      .join(' ')
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : ''
    out.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`)
    for (const [x, y] of valid)
      out.push(
        `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3.5" fill="${s.color}"/>`,
      )
    const ly = margin.top + 10 + i * 22
    const lx = margin.left + plotW + 16
    out.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`,
      `<text x="${lx + 30}" y="${ly + 4}">${escapeXml(s.label)}</text>`,
    )
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

function escapeXml(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}
