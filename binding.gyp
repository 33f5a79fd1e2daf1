{
  "targets": [
    {
      "target_name": "codeblob",
      "sources": ["native-bindings/codeblob.c"],
      "include_dirs": ["native-bindings"],
      "defines": ["NAPI_EXPERIMENTAL", "_GNU_SOURCE"],
      "cflags": ["-std=c11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "libraries": ["-ldl"]
    }
  ]
}
