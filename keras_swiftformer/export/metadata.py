"""Standard TFLite model metadata in exported files, so MediaPipe Tasks (and the TFLite Task
Library, Android Studio's model binding) run them as they are.

What the official `MetadataPopulator` of tflite-support writes, without tflite-support (it does
not install on Python >= 3.10) or mediapipe (whose writer does not import from its wheel): a
`ModelMetadata` flatbuffer of the TFLite Metadata schema (`metadata_schema.py`, vendored) goes
into the model's `metadata` list under the name "TFLITE_METADATA", its bytes in a new buffer;
the associated files (the label file) are appended to the `.tflite` as a zip archive of stored
(uncompressed) entries, so the model file is also a zip whose entries are those files.

MediaPipe reads from it: the input's colour space and normalisation (one mean and one std: it
refuses per-channel values), the output's labels (`TENSOR_AXIS_LABELS`) and, for segmenters, the
activation to apply ("SEGMENTER_METADATA" custom metadata).
"""

import io
import zipfile

import numpy as np

from keras_swiftformer.export import metadata_schema as schema
from keras_swiftformer.optional import require

METADATA_NAME = "TFLITE_METADATA"
SEGMENTER_METADATA_NAME = "SEGMENTER_METADATA"
LABELS_FILE = "labels.txt"
# The oldest metadata parser that reads every field written here (all are from 1.0.0).
MIN_PARSER_VERSION = "1.0.0"
# MediaPipe's `mediapipe.tasks.Activation` of the image segmenter metadata schema ("V001").
SEGMENTER_ACTIVATIONS = {"none": 0, "sigmoid": 1, "softmax": 2}


def _builder(size):
    return require("flatbuffers", "writing TFLite metadata", extra="export").Builder(size)


def _string(builder, text):
    return builder.CreateString(text) if text is not None else None


def _table_vector(builder, start_vector, offsets):
    start_vector(builder, len(offsets))
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _float_vector(builder, start_vector, values):
    start_vector(builder, len(values))
    for value in reversed(values):
        builder.PrependFloat32(float(value))
    return builder.EndVector()


def _associated_file(builder, name, description, file_type):
    name, description = _string(builder, name), _string(builder, description)
    schema.AssociatedFileStart(builder)
    schema.AssociatedFileAddName(builder, name)
    schema.AssociatedFileAddDescription(builder, description)
    schema.AssociatedFileAddType(builder, file_type)
    return schema.AssociatedFileEnd(builder)


def _image_content(builder, color_space, size=None):
    default_size = None
    if size is not None:
        schema.ImageSizeStart(builder)
        schema.ImageSizeAddWidth(builder, int(size[1]))
        schema.ImageSizeAddHeight(builder, int(size[0]))
        default_size = schema.ImageSizeEnd(builder)
    schema.ImagePropertiesStart(builder)
    schema.ImagePropertiesAddColorSpace(builder, color_space)
    if default_size is not None:
        schema.ImagePropertiesAddDefaultSize(builder, default_size)
    properties = schema.ImagePropertiesEnd(builder)
    schema.ContentStart(builder)
    schema.ContentAddContentPropertiesType(builder, schema.ContentProperties.ImageProperties)
    schema.ContentAddContentProperties(builder, properties)
    return schema.ContentEnd(builder)


def _feature_content(builder):
    schema.FeaturePropertiesStart(builder)
    properties = schema.FeaturePropertiesEnd(builder)
    schema.ContentStart(builder)
    schema.ContentAddContentPropertiesType(builder, schema.ContentProperties.FeatureProperties)
    schema.ContentAddContentProperties(builder, properties)
    return schema.ContentEnd(builder)


def _normalization_unit(builder, mean, std):
    mean_vector = _float_vector(builder, schema.NormalizationOptionsStartMeanVector, mean)
    std_vector = _float_vector(builder, schema.NormalizationOptionsStartStdVector, std)
    schema.NormalizationOptionsStart(builder)
    schema.NormalizationOptionsAddMean(builder, mean_vector)
    schema.NormalizationOptionsAddStd(builder, std_vector)
    options = schema.NormalizationOptionsEnd(builder)
    schema.ProcessUnitStart(builder)
    schema.ProcessUnitAddOptionsType(builder, schema.ProcessUnitOptions.NormalizationOptions)
    schema.ProcessUnitAddOptions(builder, options)
    return schema.ProcessUnitEnd(builder)


def _stats(builder, minimum, maximum):
    max_vector = _float_vector(builder, schema.StatsStartMaxVector, maximum)
    min_vector = _float_vector(builder, schema.StatsStartMinVector, minimum)
    schema.StatsStart(builder)
    schema.StatsAddMax(builder, max_vector)
    schema.StatsAddMin(builder, min_vector)
    return schema.StatsEnd(builder)


def _tensor(builder, name, description, content, process_units=(), stats=None, files=()):
    name, description = _string(builder, name), _string(builder, description)
    units = _table_vector(builder, schema.TensorMetadataStartProcessUnitsVector, list(process_units)) if process_units else None
    files = _table_vector(builder, schema.TensorMetadataStartAssociatedFilesVector, list(files)) if files else None
    schema.TensorMetadataStart(builder)
    schema.TensorMetadataAddName(builder, name)
    schema.TensorMetadataAddDescription(builder, description)
    schema.TensorMetadataAddContent(builder, content)
    if units is not None:
        schema.TensorMetadataAddProcessUnits(builder, units)
    if stats is not None:
        schema.TensorMetadataAddStats(builder, stats)
    if files is not None:
        schema.TensorMetadataAddAssociatedFiles(builder, files)
    return schema.TensorMetadataEnd(builder)


def _segmenter_options(activation):
    """The "SEGMENTER_METADATA" custom metadata: MediaPipe's ImageSegmenterOptions table
    (`mediapipe/tasks/metadata/image_segmenter_metadata_schema.fbs`: activation, byte, slot 0;
    min_parser_version, string, slot 1; file identifier "V001")."""
    builder = _builder(64)
    version = builder.CreateString(MIN_PARSER_VERSION)
    builder.StartObject(2)
    builder.PrependInt8Slot(0, SEGMENTER_ACTIVATIONS[activation], 0)
    builder.PrependUOffsetTRelativeSlot(1, version, 0)
    builder.Finish(builder.EndObject(), file_identifier=b"V001")
    return bytes(builder.Output())


def _custom_metadata(builder, name, data):
    name = builder.CreateString(name)
    # CustomMetadata: name (slot 0), data: [ubyte] (force_align: 16) (slot 1).
    builder.StartVector(1, len(data), 16)
    builder.head -= len(data)
    builder.Bytes[builder.head : builder.head + len(data)] = data
    data = builder.EndVector()
    builder.StartObject(2)
    builder.PrependUOffsetTRelativeSlot(0, name, 0)
    builder.PrependUOffsetTRelativeSlot(1, data, 0)
    return builder.EndObject()


def image_model_metadata(task, name, description, input_size, mean, std, labels=None,
                         probabilities=True, input_range=(0.0, 255.0), author="keras-swiftformer"):
    """The ModelMetadata flatbuffer (bytes) of an image classifier or segmenter.

    Args:
        task: "classifier" (output: one score per class) or "segmenter" (output: one score
            per class and pixel).
        name, description: the model's name and what it does.
        input_size: (height, width) of the input image.
        mean, std: the NormalizationOptions: the file's input is `(pixel - mean) / std`
            (one value each for MediaPipe; three are written as given).
        labels: class names, packed as the output's TENSOR_AXIS_LABELS file `labels.txt`.
        probabilities: classifier: the output is a softmax (else logits); segmenter: the
            activation MediaPipe applies for confidence masks is a softmax (else none).
        input_range: the input's (min, max) as the file takes it.
    """
    if task not in ("classifier", "segmenter"):
        raise ValueError(f"`task` must be 'classifier' or 'segmenter'. Received: {task!r}")
    builder = _builder(1024)
    normalization = _normalization_unit(builder, np.atleast_1d(mean), np.atleast_1d(std))
    input_stats = _stats(builder, [input_range[0]], [input_range[1]])
    input_content = _image_content(builder, schema.ColorSpaceType.RGB, input_size)
    per_channel = np.size(mean) > 1 or np.size(std) > 1
    formula = (f"(pixel - {np.ravel(mean).tolist()}) / {np.ravel(std).tolist()} per channel" if per_channel
               else f"(pixel - {float(np.ravel(mean)[0]):g}) / {float(np.ravel(std)[0]):g}")
    input_tensor = _tensor(
        builder, "image",
        f"RGB image, {input_size[0]}x{input_size[1]}, channels last; the file takes {formula} "
        f"of pixels in [0, 255]" + ("" if per_channel else " (ImageNet normalisation is inside the graph)"),
        input_content, [normalization], input_stats,
    )
    files = []
    if labels is not None:
        files.append(_associated_file(builder, LABELS_FILE, "Class names, one per line, in output order.",
                                      schema.AssociatedFileType.TENSOR_AXIS_LABELS))
    if task == "classifier":
        scores = "probabilities (a softmax)" if probabilities else "logits"
        output_content = _feature_content(builder)
        stats = _stats(builder, [0.0], [1.0]) if probabilities else None
        output_tensor = _tensor(builder, "probability" if probabilities else "logits",
                                f"Class {scores}, one per class.", output_content, (), stats, files)
    else:
        output_content = _image_content(builder, schema.ColorSpaceType.GRAYSCALE)
        output_tensor = _tensor(builder, "segmentation_masks",
                                "Per-pixel class logits (height, width, classes); the class is their argmax.",
                                output_content, (), None, files)
    inputs = _table_vector(builder, schema.SubGraphMetadataStartInputTensorMetadataVector, [input_tensor])
    outputs = _table_vector(builder, schema.SubGraphMetadataStartOutputTensorMetadataVector, [output_tensor])
    custom = None
    if task == "segmenter":
        options = _custom_metadata(builder, SEGMENTER_METADATA_NAME,
                                   _segmenter_options("softmax" if probabilities else "none"))
        builder.StartVector(4, 1, 4)
        builder.PrependUOffsetTRelative(options)
        custom = builder.EndVector()
    schema.SubGraphMetadataStart(builder)
    schema.SubGraphMetadataAddInputTensorMetadata(builder, inputs)
    schema.SubGraphMetadataAddOutputTensorMetadata(builder, outputs)
    if custom is not None:
        builder.PrependUOffsetTRelativeSlot(9, custom, 0)  # SubGraphMetadata.custom_metadata
    subgraph = schema.SubGraphMetadataEnd(builder)
    subgraphs = _table_vector(builder, schema.ModelMetadataStartSubgraphMetadataVector, [subgraph])
    name, description, author = (_string(builder, text) for text in (name, description, author))
    version = _string(builder, MIN_PARSER_VERSION)
    schema.ModelMetadataStart(builder)
    schema.ModelMetadataAddName(builder, name)
    schema.ModelMetadataAddDescription(builder, description)
    schema.ModelMetadataAddSubgraphMetadata(builder, subgraphs)
    schema.ModelMetadataAddAuthor(builder, author)
    schema.ModelMetadataAddMinParserVersion(builder, version)
    builder.Finish(schema.ModelMetadataEnd(builder), file_identifier=schema.FILE_IDENTIFIER)
    return bytes(builder.Output())


def _tflite_schema():
    return require("ai_edge_litert.schema_py_generated", "writing TFLite metadata")


def _aligned_buffer_class(litert_schema):
    class AlignedBufferT(litert_schema.BufferT):
        """A Buffer whose data starts at a 16-byte boundary, as the schema's `force_align: 16`
        asks (the generated object API aligns only to the element size)."""

        def Pack(self, builder):  # noqa: N802 - the generated API's name
            if self.data is None or not len(self.data):
                return super().Pack(builder)
            data = np.asarray(self.data, np.uint8).tobytes()
            builder.StartVector(1, len(data), 16)
            builder.head -= len(data)
            builder.Bytes[builder.head : builder.head + len(data)] = data
            vector = builder.EndVector()
            litert_schema.BufferStart(builder)
            litert_schema.BufferAddData(builder, vector)
            litert_schema.BufferAddOffset(builder, self.offset)
            litert_schema.BufferAddSize(builder, self.size)
            return litert_schema.BufferEnd(builder)

    return AlignedBufferT


def add_metadata(tflite_bytes, metadata, associated_files=None):
    """The `.tflite` bytes with `metadata` (a ModelMetadata flatbuffer) as "TFLITE_METADATA"
    and `associated_files` ({name: bytes}) zipped onto the end, as MetadataPopulator does.
    Metadata already in the file under that name is replaced."""
    litert = _tflite_schema()
    model = litert.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    aligned = _aligned_buffer_class(litert)
    for buffer in model.buffers or []:
        buffer.__class__ = aligned
    model.metadata = [entry for entry in (model.metadata or [])
                      if entry.name not in (METADATA_NAME, METADATA_NAME.encode())]
    buffer = aligned()
    buffer.data = np.frombuffer(metadata, np.uint8)
    model.buffers.append(buffer)
    entry = litert.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = _builder(len(tflite_bytes) + len(metadata) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    content = bytes(builder.Output())
    if not associated_files:
        return content
    archive = io.BytesIO(content)
    archive.seek(0, io.SEEK_END)
    # Appending to a non-zip stream writes the entries after the model; zip offsets count from
    # the start of the file, so the whole file reads as a zip archive.
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_STORED) as bundle:
        for name, data in associated_files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            bundle.writestr(info, data)
    return archive.getvalue()


def read_metadata(tflite_bytes):
    """The "TFLITE_METADATA" flatbuffer bytes of a `.tflite` file, or None."""
    litert = _tflite_schema()
    model = litert.Model.GetRootAs(tflite_bytes, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == METADATA_NAME:
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return None


def associated_files(tflite_bytes):
    """{name: bytes} of the files packed into a `.tflite` (empty when it is no zip)."""
    try:
        with zipfile.ZipFile(io.BytesIO(tflite_bytes)) as bundle:
            return {name: bundle.read(name) for name in bundle.namelist()}
    except zipfile.BadZipFile:
        return {}
