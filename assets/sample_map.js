// The sample map: plotly.js (served locally) draws props.figure; a lasso/box selection or a click
// is written to the component's value ("select:id,id,..." or "click:id"), which fires its change
// event so Python can filter the samples table or open the sample.
let drawn = null;
const draw = () => {
  const div = element.querySelector(".tcap-map");
  if (!div || !props.figure || typeof Plotly === "undefined") return;
  if (div._fullLayout && drawn === props.figure) return;
  Plotly.react(div, props.figure.data, props.figure.layout, { displaylogo: false, responsive: true });
  drawn = props.figure;
  if (div._tcapBound) return;
  div._tcapBound = true;
  div.on("plotly_selected", (event) => {
    const ids = event && event.points ? event.points.map((p) => p.customdata) : [];
    props.value = "select:" + ids.join(",");
  });
  div.on("plotly_click", (event) => {
    if (event && event.points && event.points.length) props.value = "click:" + event.points[0].customdata;
  });
};
draw();
watch(["figure", "value"], draw);
