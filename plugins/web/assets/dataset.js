// A dataset's page: copy buttons over the code blocks (the code stays selectable without them).
"use strict";
(() => {
  const status = document.getElementById("copied");
  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard API (plain http on another host): copy through a selection.
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
  }
  for (const button of document.querySelectorAll("button.copy")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const code = document.getElementById(button.dataset.copy);
      await copy(code.textContent);
      const label = document.getElementById(`${button.dataset.copy}-label`).textContent;
      status.textContent = `Copied: ${label}`;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }
})();
