# CPU-only build through node-gyp, for hosts without CMake (`npm run build:gyp`). The CUDA backend
# needs the CMake build. Sources come from native/sources.json, the list CMakeLists.txt reads too.
{
  "targets": [
    {
      "target_name": "stepvideo",
      "sources": [
        "<!@(node -p \"require('./native/sources.json').cpu.join(' ')\")"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-frtti"],
      "cflags!": ["-fno-exceptions"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
      },
      "ldflags": ["-pthread"]
    }
  ]
}
