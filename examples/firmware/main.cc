// Host-side smoke test of the files `edgeopt build` / `edgeopt export-c` generate.
// On a device, the same header gives the arena size and the op resolver:
//
//   alignas(16) static uint8_t tensor_arena[G_MODEL_ARENA_SIZE];
//   static g_model_op_resolver_t resolver;
//   g_model_register_ops(resolver);
//   tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, tensor_arena, G_MODEL_ARENA_SIZE);
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "g_model.h"

int main() {
  const auto address = reinterpret_cast<std::uintptr_t>(g_model);
  if (address % 16 != 0) {
    std::printf("FAIL: g_model is at %p, not 16-byte aligned\n", static_cast<const void*>(g_model));
    return 1;
  }
  if (g_model_len != G_MODEL_LEN || sizeof(g_model) != G_MODEL_LEN) {
    std::printf("FAIL: g_model_len %u != G_MODEL_LEN %u\n", g_model_len, static_cast<unsigned>(G_MODEL_LEN));
    return 1;
  }
  if (std::memcmp(g_model + 4, "TFL3", 4) != 0) {
    std::printf("FAIL: no TFL3 flatbuffer identifier\n");
    return 1;
  }
  alignas(16) static std::uint8_t tensor_arena[G_MODEL_ARENA_SIZE];
  static const int input_shape[] = G_MODEL_INPUT0_SHAPE;
  static const int output_shape[] = G_MODEL_OUTPUT0_SHAPE;
  static G_MODEL_INPUT0_CTYPE input_buffer[G_MODEL_INPUT0_ELEMENTS];

  std::printf("model_bytes=%u aligned16=yes\n", g_model_len);
  std::printf("arena_size=%u arena_measured=%u\n", static_cast<unsigned>(sizeof(tensor_arena)),
              static_cast<unsigned>(G_MODEL_ARENA_MEASURED));
  std::printf("ops=%d macs=%lu\n", G_MODEL_OP_COUNT, static_cast<unsigned long>(G_MODEL_MACS));
  std::printf("input0 dtype=%s dims=%d shape=", G_MODEL_INPUT0_DTYPE, G_MODEL_INPUT0_DIMS);
  for (int d : input_shape) std::printf("%d,", d);
  std::printf(" scale=%.9g zero_point=%d buffer_bytes=%u\n", static_cast<double>(G_MODEL_INPUT0_SCALE),
              G_MODEL_INPUT0_ZERO_POINT, static_cast<unsigned>(sizeof(input_buffer)));
  std::printf("output0 dtype=%s dims=%d shape=", G_MODEL_OUTPUT0_DTYPE, G_MODEL_OUTPUT0_DIMS);
  for (int d : output_shape) std::printf("%d,", d);
  std::printf(" scale=%.9g zero_point=%d\n", static_cast<double>(G_MODEL_OUTPUT0_SCALE), G_MODEL_OUTPUT0_ZERO_POINT);
  std::printf("OK\n");
  return 0;
}
