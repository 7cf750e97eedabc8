// The token lengths every caption is padded or truncated to: the official caption server's
// max_length for Step-LLM and for Hunyuan-CLIP. The tokenizers default to them, the caption
// encoder encodes at them, and a DiT text row holds both (CLIP first: 77 + 320 = 397 keys).

/** Step-LLM tokens per caption (max_length 320). */
export const LLM_TOKENS = 320;
/** Hunyuan-CLIP tokens per caption (max_length 77). */
export const CLIP_TOKENS = 77;
