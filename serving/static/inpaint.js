// The inpainting page: a photo, a painted hole, one :predict request to TF
// Serving's REST API (or serving.local_server), the result beside the input.
// Plain browser JavaScript, no build step and no third-party code. The page
// speaks only to the server it came from: serving.local_server serves it
// beside the API, and `python -m serving.web` serves it in front of real TF
// Serving (which sends no CORS headers), forwarding /v1/ there.
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const model = params.get("model") || "lbam";
  // Relative, so that the page also works under a path prefix of a proxy.
  const api = "v1/models/" + encodeURIComponent(model);
  const undoLimit = 30;

  const $ = (id) => document.getElementById(id);
  const photo = $("photo"), mask = $("mask"), result = $("result");
  const drop = $("drop"), status = $("status"), download = $("download");
  const buttons = { undo: $("undo"), clear: $("clear"), inpaint: $("inpaint") };
  const hd = { strategy: $("hd_strategy"), cropMargin: $("crop_margin"),
               resizeLimit: $("resize_limit") };
  const working = $("working"), elapsed = $("elapsed");
  const maskContext = mask.getContext("2d", { willReadFrequently: true });

  let photoName = "photo";
  let undoStack = [];
  let stroke = null;  // {pointerId, x, y} while painting
  let busy = false;
  let resultUrl = null;  // the object URL of the shown result, if any

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function refreshButtons() {
    const loaded = photo.width > 0;
    buttons.undo.disabled = busy || undoStack.length === 0;
    buttons.clear.disabled = busy || !loaded;
    buttons.inpaint.disabled = busy || !loaded;
    // The margin is crop's only; original scales nothing.
    hd.strategy.disabled = busy;
    hd.cropMargin.disabled = busy || hd.strategy.value !== "crop";
    hd.resizeLimit.disabled = busy || hd.strategy.value === "original";
  }
  hd.strategy.addEventListener("change", refreshButtons);

  // --- progress while the server works --------------------------------------

  // An indeterminate bar and the seconds since the click: fetch reports no
  // upload progress, and the server none of its own.
  let progressTimer = null;
  let progressStarted = 0;

  function startProgress() {
    progressStarted = performance.now();
    elapsed.textContent = "0 s";
    working.classList.remove("hidden");
    progressTimer = setInterval(() => {
      elapsed.textContent =
          `${Math.floor((performance.now() - progressStarted) / 1000)} s`;
    }, 250);
  }

  function stopProgress() {
    clearInterval(progressTimer);
    progressTimer = null;
    working.classList.add("hidden");
  }

  function showResult(url) {
    if (resultUrl) URL.revokeObjectURL(resultUrl);
    resultUrl = url;
    if (url) {
      result.src = url;
    } else {
      result.classList.add("hidden");
      result.removeAttribute("src");
      download.classList.add("hidden");
      download.removeAttribute("href");
    }
  }

  // --- the server -----------------------------------------------------------

  async function errorText(response) {
    const body = await response.text();
    try {
      const parsed = JSON.parse(body);
      if (parsed && parsed.error) return parsed.error;
    } catch (_) { /* not JSON: a proxy's or server's own page */ }
    return body.trim() || response.statusText;
  }

  async function checkServer() {
    const line = $("server");
    try {
      const response = await fetch(api);
      if (!response.ok) {
        line.textContent = `Model "${model}": HTTP ${response.status}: ` +
            await errorText(response);
        line.classList.add("error");
        return;
      }
      const state = (await response.json()).model_version_status[0];
      line.textContent = `Model "${model}" version ${state.version}: ` +
          state.state + ` (${window.location.host})`;
    } catch (error) {
      line.textContent = `Cannot reach the model server: ${error.message}`;
      line.classList.add("error");
    }
  }

  // --- the photo ------------------------------------------------------------

  function openFile(file) {
    if (!file) return;
    const url = URL.createObjectURL(file);
    const image = new Image();
    image.onload = () => {
      URL.revokeObjectURL(url);
      // The canvases keep the photo's own size: the request sends every
      // pixel, and the result comes back at the same size.
      for (const canvas of [photo, mask]) {
        canvas.width = image.naturalWidth;
        canvas.height = image.naturalHeight;
      }
      photo.getContext("2d").drawImage(image, 0, 0);
      photoName = file.name.replace(/\.[^.]*$/, "") || "photo";
      undoStack = [];
      showResult(null);
      say(`${file.name}: width ${image.naturalWidth}, height ` +
          `${image.naturalHeight}. ` +
          "Paint over what should be filled, then press Inpaint.");
      refreshButtons();
    };
    image.onerror = () => {
      URL.revokeObjectURL(url);
      say(`${file.name} is not an image this browser can open: ` +
          "choose a JPEG, PNG, GIF, BMP or WebP file.", true);
    };
    image.src = url;
  }

  $("file").addEventListener("change", (event) => {
    openFile(event.target.files[0]);
    event.target.value = "";  // the same file again is a new choice
  });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("dragging");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    openFile(event.dataTransfer.files[0]);
  });

  // --- the brush ------------------------------------------------------------

  const brush = $("brush");
  brush.addEventListener("input", () => {
    $("brush_size").textContent = brush.value;
  });

  function snapshot() {
    undoStack.push(maskContext.getImageData(0, 0, mask.width, mask.height));
    if (undoStack.length > undoLimit) undoStack.shift();
    refreshButtons();
  }

  function toCanvas(event) {
    const box = mask.getBoundingClientRect();
    return { x: (event.clientX - box.left) * mask.width / box.width,
             y: (event.clientY - box.top) * mask.height / box.height,
             scale: mask.width / box.width };
  }

  function paintTo(event) {
    const point = toCanvas(event);
    maskContext.globalCompositeOperation =
        $("eraser").checked ? "destination-out" : "source-over";
    maskContext.strokeStyle = maskContext.fillStyle = "rgb(255, 0, 0)";
    // The slider is in screen pixels, whatever the photo's zoom.
    maskContext.lineWidth = Number(brush.value) * point.scale;
    maskContext.lineCap = maskContext.lineJoin = "round";
    maskContext.beginPath();
    maskContext.moveTo(stroke.x, stroke.y);
    maskContext.lineTo(point.x, point.y);
    maskContext.stroke();
    stroke.x = point.x;
    stroke.y = point.y;
  }

  mask.addEventListener("pointerdown", (event) => {
    if (busy || photo.width === 0 || event.button !== 0) return;
    event.preventDefault();
    snapshot();
    mask.setPointerCapture(event.pointerId);
    const point = toCanvas(event);
    stroke = { pointerId: event.pointerId, x: point.x, y: point.y };
    paintTo(event);  // a click paints a dot
  });
  mask.addEventListener("pointermove", (event) => {
    if (stroke && event.pointerId === stroke.pointerId) paintTo(event);
  });
  for (const name of ["pointerup", "pointercancel"]) {
    mask.addEventListener(name, (event) => {
      if (stroke && event.pointerId === stroke.pointerId) stroke = null;
    });
  }

  buttons.undo.addEventListener("click", () => {
    const previous = undoStack.pop();
    if (previous) maskContext.putImageData(previous, 0, 0);
    refreshButtons();
  });
  buttons.clear.addEventListener("click", () => {
    snapshot();
    maskContext.clearRect(0, 0, mask.width, mask.height);
  });

  // --- the request ----------------------------------------------------------

  // The hole as the export reads it (white = hole, mask_polarity "white"):
  // every pixel the brush covered at least half is a hole pixel.
  function maskCanvas() {
    const painted = maskContext.getImageData(0, 0, mask.width, mask.height);
    const out = document.createElement("canvas");
    out.width = mask.width;
    out.height = mask.height;
    const context = out.getContext("2d");
    const pixels = context.createImageData(mask.width, mask.height);
    let holes = 0;
    for (let i = 3; i < painted.data.length; i += 4) {
      const value = painted.data[i] >= 128 ? 255 : 0;
      holes += value ? 1 : 0;
      pixels.data[i - 3] = pixels.data[i - 2] = pixels.data[i - 1] = value;
      pixels.data[i] = 255;
    }
    context.putImageData(pixels, 0, 0);
    return { canvas: out, holes: holes };
  }

  function pngBase64(canvas) {
    return new Promise((resolve, reject) => {
      canvas.toBlob((blob) => {
        if (!blob) {
          reject(new Error("the browser could not encode the image as PNG"));
          return;
        }
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result.split(",", 2)[1]);
        reader.onerror = () => reject(reader.error);
        reader.readAsDataURL(blob);
      }, "image/png");
    });
  }

  // The high-resolution inputs of the request: the strategy always, the
  // margin and limit when typed in (else the export's defaults apply).
  function hdInputs() {
    const inputs = { hd_strategy: hd.strategy.value };
    const fields = [
      [hd.cropMargin, "crop_margin", "Crop margin", 0],
      [hd.resizeLimit, "resize_limit", "Resize limit", 1]];
    for (const [field, name, label, least] of fields) {
      const text = field.value.trim();
      if (field.disabled || text === "") continue;
      const value = Number(text);
      if (!Number.isInteger(value) || value < least || value > 2147483647) {
        throw new Error(`${label} "${text}" is not a whole number of ` +
            `pixels, ${least} or more: correct it, or empty it for the ` +
            "export's default.");
      }
      inputs[name] = value;
    }
    return inputs;
  }

  // Bytes for an object URL: a large result as a data: URL is slow to show
  // and too long for the browser to download from a link.
  function pngBlob(base64) {
    const text = atob(base64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return new Blob([bytes], { type: "image/png" });
  }

  async function inpaint() {
    let options;
    try {
      options = hdInputs();
    } catch (error) {
      say(error.message, true);
      return;
    }
    const hole = maskCanvas();
    if (hole.holes === 0) {
      say("Paint over the part of the photo to fill first.", true);
      return;
    }
    busy = true;
    refreshButtons();
    const size = `${photo.height}x${photo.width} (height x width)`;
    const what = `${size}, ${hole.holes} hole pixels, strategy ` +
        options.hd_strategy;
    say(`Inpainting ${what}: encoding the photo...`);
    startProgress();
    const started = performance.now();
    try {
      const body = {
        signature_name: "serving_default",
        instances: [Object.assign({
          image_bytes: { b64: await pngBase64(photo) },
          mask_bytes: { b64: await pngBase64(hole.canvas) },
          mask_polarity: "white",
        }, options)],
      };
      say(`Inpainting ${what}: waiting for the server...`);
      const response = await fetch(api + ":predict", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!response.ok) {
        say(`The server refused the ${size} photo (HTTP ${response.status}): ` +
            await errorText(response), true);
        return;
      }
      const prediction = (await response.json()).predictions[0];
      const png = prediction.b64 || prediction.image_bytes.b64;
      say(`Inpainting ${what}: showing the result...`);
      showResult(URL.createObjectURL(pngBlob(png)));
      await result.decode();
      result.classList.remove("hidden");
      download.href = result.src;
      download.download = `${photoName}-inpainted.png`;
      download.classList.remove("hidden");
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      say(`Done: width ${result.naturalWidth}, height ` +
          `${result.naturalHeight}, strategy ${options.hd_strategy}, in ` +
          `${seconds} s. Download it, or paint more and inpaint again.`);
    } catch (error) {
      say(`The request failed: ${error.message}. Is the server running?`,
          true);
    } finally {
      stopProgress();
      busy = false;
      refreshButtons();
    }
  }
  buttons.inpaint.addEventListener("click", inpaint);

  refreshButtons();
  checkServer();
})();
