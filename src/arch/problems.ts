// What can be wrong with a well-formed GGUF file as a model of its architecture.

export type ModelProblemCode =
  | "UNKNOWN_ARCHITECTURE"
  | "MISSING_KEY"
  | "BAD_KEY" // present but of the wrong type or range
  | "BAD_CONFIG" // keys that contradict each other (heads not dividing the hidden size, …)
  | "TENSOR_MISSING"
  | "BAD_SHAPE"
  | "BAD_TYPE" // a ggml type not allowed for the tensor's role
  | "EXTRA_TENSOR" // a tensor the architecture does not use (llama.cpp refuses the file)
  | "LAYER_COUNT_MISMATCH"
  | "NESTED_ARRAY"; // a metadata array of arrays: valid GGUF, refused by llama.cpp's GGUF reader

export interface ModelProblem {
  readonly code: ModelProblemCode;
  /** One sentence naming the tensor or key and the reason. */
  readonly message: string;
  readonly key?: string;
  readonly tensor?: string;
}
