{
  "targets": [
    {
      "target_name": "virtfleet_libvirt_ext",
      "sources": ["src/libvirt_ext.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(pkg-config --cflags-only-I libvirt 2>/dev/null | sed 's/-I//g')"
      ],
      "defines": ["NAPI_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "libraries": ["<!@(pkg-config --libs libvirt 2>/dev/null || echo -lvirt)"]
    }
  ]
}
