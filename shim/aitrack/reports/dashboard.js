for (const table of document.querySelectorAll("table[data-sortable]")) {
  const heads = [...table.tHead.rows[0].cells];
  const status = document.getElementById("sort-status");
  heads.forEach((th, i) => th.querySelector("button").addEventListener("click", () => {
    const asc = th.getAttribute("aria-sort") === "descending";
    for (const h of heads) h.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    const num = th.dataset.type === "num";
    const key = (row) => {
      const c = row.cells[i];
      const v = c.dataset.v !== undefined ? c.dataset.v : c.textContent;
      return num ? (v === "" ? -Infinity : Number(v)) : v.toLowerCase();
    };
    const body = table.tBodies[0];
    const rows = [...body.rows].sort((a, b) => {
      const x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    body.append(...rows);
    if (status) status.textContent = `Sorted by ${th.textContent.trim()}, ` +
      (asc ? "ascending" : "descending");
  }));
}
