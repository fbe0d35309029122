// Sounds synthesized with the Web Audio API (no audio files): a cash register for a profit,
// a downer for a loss, a pop for a close or a click. Muting is remembered in this browser.

const KEY = "tradeoptions.muted";
let context = null;

export function isMuted() {
  return localStorage.getItem(KEY) === "1";
}

function audio() {
  if (isMuted()) return null;
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return null;
  context ||= new Context();
  if (context.state === "suspended") context.resume().catch(() => {});
  return context;
}

function tone(ctx, { type = "sine", from, to = from, start = 0, length = 0.15, volume = 0.2 }) {
  const oscillator = ctx.createOscillator();
  const gain = ctx.createGain();
  const at = ctx.currentTime + start;
  oscillator.type = type;
  oscillator.frequency.setValueAtTime(from, at);
  oscillator.frequency.exponentialRampToValueAtTime(to, at + length);
  gain.gain.setValueAtTime(0.0001, at);
  gain.gain.exponentialRampToValueAtTime(volume, at + 0.01);
  gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
  oscillator.connect(gain).connect(ctx.destination);
  oscillator.start(at);
  oscillator.stop(at + length + 0.02);
}

const SOUNDS = {
  // "Cha-ching": a short noisy clack, then two bright bells.
  profit(ctx) {
    tone(ctx, { type: "square", from: 180, to: 90, length: 0.05, volume: 0.08 });
    tone(ctx, { type: "triangle", from: 1318, start: 0.06, length: 0.35, volume: 0.25 });
    tone(ctx, { type: "triangle", from: 1760, start: 0.16, length: 0.5, volume: 0.22 });
  },
  // A falling two-note "womp".
  loss(ctx) {
    tone(ctx, { type: "sawtooth", from: 330, to: 300, length: 0.25, volume: 0.12 });
    tone(ctx, { type: "sawtooth", from: 262, to: 180, start: 0.27, length: 0.5, volume: 0.12 });
  },
  pop(ctx) {
    tone(ctx, { type: "sine", from: 600, to: 1200, length: 0.08, volume: 0.25 });
  },
};

export function play(name) {
  document.body.dataset.lastSound = name; // what was (or, muted, would have been) played: for tests
  const ctx = audio();
  if (ctx && SOUNDS[name]) SOUNDS[name](ctx);
}

export function bindMuteToggle(button) {
  if (!button) return;
  const render = () => {
    const muted = isMuted();
    button.setAttribute("aria-pressed", String(muted));
    button.textContent = muted ? "Sound off" : "Sound on";
    button.title = muted ? "Sounds are muted: click to unmute" : "Click to mute sounds";
  };
  button.addEventListener("click", () => {
    localStorage.setItem(KEY, isMuted() ? "0" : "1");
    render();
    play("pop");
  });
  render();
}
